namespace Scipio.Bench;

/// <summary>The Markdown table of results and the notes that say what each row measures against what.</summary>
internal static class Report
{
    public static void Table(TextWriter output, IReadOnlyList<BenchmarkResult> results)
    {
        output.WriteLine("| benchmark | Scipio ns/op | CPU ns/op | B/op | baseline | ns/op | CPU ns/op | B/op | ratio | target |");
        output.WriteLine("|---|---:|---:|---:|---|---:|---:|---:|---:|---|");
        foreach (var result in results)
        {
            var scipio = result.Scipio;
            for (int i = 0; i < result.Baselines.Count; i++)
            {
                var baseline = result.Baselines[i];
                string target = i == 0 && result.Benchmark.Target.Text.Length > 0
                    ? $"{result.Benchmark.Target.Text}: {(result.Benchmark.Target.IsMet(scipio, baseline) ? "met" : "**missed**")}"
                    : "";
                output.WriteLine($"| {result.Benchmark.Name} | {NsCell(scipio)} | {Format.Ns(scipio.MedianCpuNs)} | {BytesCell(scipio)} | " +
                    $"{baseline.Label} | {NsCell(baseline)} | {Format.Ns(baseline.MedianCpuNs)} | {BytesCell(baseline)} | " +
                    $"{Format.Ratio(baseline.MedianNs / scipio.MedianNs)} | {target} |");
            }
        }
    }

    public static void Notes(TextWriter output, IReadOnlyList<BenchmarkResult> results)
    {
        output.WriteLine("What each row measures (Scipio side on the shard; baselines on the ThreadPool):");
        foreach (var result in results)
        {
            var b = result.Benchmark;
            output.WriteLine($"- {b.Name}: {b.Measures}. Scipio: {b.Scipio.Label}.");
            foreach (var baseline in b.Baselines) output.WriteLine($"  - baseline {baseline.Side.Label}: {baseline.Why}.");
        }
        output.WriteLine("- ns/op: elapsed time per operation. CPU ns/op: CPU time of the whole process per operation " +
            "(getrusage: every thread, including ThreadPool workers and the kernel's io_uring workers); above ns/op when " +
            "a side keeps more than one CPU busy. Ratio: baseline ns/op ÷ Scipio ns/op.");
        output.WriteLine("- B/op: allocated bytes per operation over a round (Scipio: the shard thread's counter; " +
            "ThreadPool: the process's). A round's fixed cost (its loop's state machine; for QD16, spawning the 16 " +
            "workers) is spread over its operations; \"steady\" is Scipio's figure while all its workers ran; \"off shard\" is " +
            "what other threads allocated during a Scipio round (work the runtime handed to the ThreadPool). 0 B/op: " +
            $"no more than {SideResult.RoundAllowance} B in a whole round.");
    }

    private static string NsCell(SideResult side) => $"{Format.Ns(side.MedianNs)} ±{side.RelativeSpread * 100:0}%";

    private static string BytesCell(SideResult side)
    {
        string cell = Format.Bytes(side.MedianBytes);
        if (side.MedianSteadyBytes is { } steady) cell += $" (steady {(double.IsNaN(steady) ? "?" : Format.Bytes(steady))})";
        if (side.MedianOffShardBytes * side.OpsPerRound > SideResult.RoundAllowance) cell += $" + {Format.Bytes(side.MedianOffShardBytes)} off shard";
        return cell;
    }
}
