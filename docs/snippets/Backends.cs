using Scipio;

namespace Snippets;

// docs/backends.md.
public static class Backends
{
    public static ShardOptions Choosing()
    {
        // <snippet:backend-choice>
        var options = new ShardOptions { Backend = ShardBackend.Auto }; // the default
        // </snippet>
        return options;
    }
}
