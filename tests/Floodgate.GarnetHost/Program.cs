using Garnet;

// Garnet for the tests: every argument goes to Garnet's own command line (--port, --bind, --lua, ...). The process
// exits when its standard input closes, so a test host that dies without killing it does not leave it running.
using var server = new GarnetServer(args);
server.Start();
Console.WriteLine("Garnet is listening");
Console.Out.Flush();

await Task.Run(() =>
{
    while (Console.In.ReadLine() is not null)
    {
    }
});
