#!/usr/bin/env bash
# Consumes the packages as a user would: packs every package of the solution into a temporary feed, then builds and
# runs a fresh C# console app and a fresh F# one that reference them from that feed only (plus nuget.org for what
# they depend on, such as FSharp.Core): a shard, a file round trip, a TCP echo; and a fresh ASP.NET Core app on
# Scipio.Hosting (UseScipio) answering one request on a shard. This is what proves "one package, no native
# dependency". Prints "package: ok" and exits 0, or says what failed and exits 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/package"
work=$(mktemp -d /tmp/scipio-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# A version of its own per run, so that the NuGet cache can never hand back an older build of the same version.
suffix="local.$(date +%s)"
version="$(sed -n 's:.*<VersionPrefix>\(.*\)</VersionPrefix>.*:\1:p' "$root/Directory.Build.props")-$suffix"
echo "packing $version into $work/feed"
dotnet pack "$root/Scipio.sln" -c Release -o "$work/feed" -p:VersionSuffix="$suffix" -v quiet -nologo -clp:ErrorsOnly

for package in "$work"/feed/*.nupkg; do
  # No native assets: the packages carry managed assemblies only.
  if unzip -l "$package" | grep -qE ' runtimes/| native/'; then echo "$package ships native assets"; exit 1; fi
done

cat >"$work/nuget.config" <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration>
  <packageSources>
    <clear />
    <add key="local" value="$work/feed" />
    <add key="nuget.org" value="https://api.nuget.org/v3/index.json" />
  </packageSources>
  <packageSourceMapping>
    <packageSource key="local"><package pattern="Scipio*" /></packageSource>
    <packageSource key="nuget.org"><package pattern="*" /></packageSource>
  </packageSourceMapping>
</configuration>
XML

for app in csharp fsharp web; do
  dir="$work/$app"
  mkdir -p "$dir"
  cp "$here/$app"/* "$dir/"
  cp "$work/nuget.config" "$dir/"
  # Outside the repository: no Directory.Build.props, Directory.Packages.props or global.json of ours applies.
  sed -i "s/SCIPIO_VERSION/$version/g" "$dir"/*proj
  echo "building the $app consumer"
  dotnet build "$dir" -c Release -v quiet -nologo -clp:ErrorsOnly
  echo "running the $app consumer"
  out=$(dotnet run --project "$dir" -c Release --no-build)
  echo "$out"
  grep -q "^consumer ok$" <<<"$out" || { echo "the $app consumer did not say ok"; exit 1; }
done
echo "package: ok"
