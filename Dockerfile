# The Floodgate gateway as a container image: built with the .NET SDK image, run on the chiseled ASP.NET Core runtime
# image (no shell, no package manager, non-root user "app", uid 1654), made for a read-only root file system.
#   docker build -t floodgate .
#   docker run --read-only -p 8080:8080 -v $PWD/samples/quickstart.yaml:/etc/floodgate/policy.yaml:ro floodgate
# Ports: 8080 the proxy, 9090 the admin endpoints (/metrics, /healthz, /readyz): keep 9090 off public networks.
# docs/deploy.md has the compose file and the Kubernetes manifests built on it.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Floodgate.Gateway -c Release -o /app --nologo -p:UseAppHost=false

FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled
WORKDIR /app
COPY --from=build /app .
USER 1654
# Nothing is written at run time but the policy's own mounts; these keep .NET off the read-only file system.
ENV DOTNET_EnableDiagnostics=0 \
    DOTNET_CLI_TELEMETRY_OPTOUT=1
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["dotnet", "/app/Floodgate.Gateway.dll", "probe", "http://127.0.0.1:9090/healthz"]
ENTRYPOINT ["dotnet", "/app/Floodgate.Gateway.dll", "run", \
    "--policy", "/etc/floodgate/policy.yaml", \
    "--listen", "http://0.0.0.0:8080", \
    "--admin", "http://0.0.0.0:9090", \
    "--shutdown-delay", "5s", \
    "--shutdown-timeout", "25s"]
