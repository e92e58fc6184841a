-- wrk script for loadtest/compare: one fixed request, prebuilt once per thread.
-- Arguments (after --): METHOD PATH BODYFILE|- AUTHORIZATION identity|gzip
-- Prints one line "WRKJSON {...}" with the counts and latency percentiles (microseconds).

function init(args)
  local method, path, file, authz, enc = args[1], args[2], args[3], args[4], args[5]
  wrk.method = method
  wrk.path = path
  wrk.headers["Authorization"] = authz
  wrk.headers["Content-Type"] = "application/json"
  if enc == "gzip" then
    wrk.headers["Content-Encoding"] = "gzip"
  end
  if file and file ~= "-" then
    local f = assert(io.open(file, "rb"))
    wrk.body = f:read("*a")
    f:close()
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"status_errors":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
