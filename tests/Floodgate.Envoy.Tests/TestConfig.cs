namespace Floodgate.Envoy.Tests;

/// <summary>One domain that exercises every matching rule of the reference.</summary>
internal static class TestConfig
{
    public const string Yaml = """
        domain: test
        descriptors:
          # A value-less key: any remote address, 3 a minute.
          - key: remote_address
            rate_limit:
              unit: minute
              requests_per_unit: 3
          # An exact value beats the wildcard and the value-less key.
          - key: remote_address
            value: 10.0.0.1
            rate_limit:
              unit: minute
              requests_per_unit: 1
          # A trailing wildcard beats the value-less key.
          - key: remote_address
            value: 10.0.0.*
            rate_limit:
              unit: minute
              requests_per_unit: 2
          # A key_value with no limit and no children: a whitelist.
          - key: remote_address
            value: 127.0.0.1
          # Wildcards anywhere in the value.
          - key: path
            value: /api/*/items*
            rate_limit:
              unit: second
              requests_per_unit: 5
          - key: client_id
            value: unlimited
            rate_limit:
              unlimited: true
          - key: authenticated
            value: "true"
            descriptors:
              - key: client_id
                rate_limit:
                  unit: hour
                  requests_per_unit: 10
          - key: shadow
            shadow_mode: true
            rate_limit:
              unit: minute
              requests_per_unit: 1
          - key: tier
            value: base
            rate_limit:
              name: base
              unit: minute
              requests_per_unit: 10
          - key: tier
            value: premium
            rate_limit:
              unit: minute
              requests_per_unit: 100
              replaces:
                - name: base
          # An unlimited rule also replaces the rules it names, as in the reference.
          - key: tier
            value: vip
            rate_limit:
              unlimited: true
              replaces:
                - name: base
          - key: files
            value: share*
            share_threshold: true
            rate_limit:
              unit: minute
              requests_per_unit: 2
          - key: blocked
            rate_limit:
              unit: minute
              requests_per_unit: 0
          - key: gcra
            rate_limit:
              unit: second
              requests_per_unit: 10
              algorithm: gcra
              burst: 2
          - key: sliding
            rate_limit:
              unit: minute
              requests_per_unit: 4
              algorithm: sliding_window
          - key: quota
            quota_mode: true
            rate_limit:
              unit: minute
              requests_per_unit: 1
          - key: detailed
            detailed_metric: true
            rate_limit:
              unit: minute
              requests_per_unit: 5
          - key: day
            rate_limit: { unit: day, requests_per_unit: 5 }
          - key: week
            rate_limit: { unit: week, requests_per_unit: 5 }
          - key: month
            rate_limit: { unit: month, requests_per_unit: 5 }
          - key: year
            rate_limit: { unit: year, requests_per_unit: 5 }
          - key: hour
            rate_limit: { unit: HOUR, requests_per_unit: 5 }
        """;
}
