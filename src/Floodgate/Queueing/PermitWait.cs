namespace Floodgate.Queueing;

/// <summary>How one turn of a wait in a permit queue ended.</summary>
internal enum PermitWait
{
    /// <summary>A lease of the key was released (here, in another process, or the queue's poll): try again.</summary>
    Woken,

    /// <summary>The wait's deadline passed.</summary>
    TimedOut,

    /// <summary>The waiter went away (its cancellation token).</summary>
    Canceled,
}
