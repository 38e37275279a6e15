-- wrk-report.lua: make wrk print its results as one JSON line (prefix "WRKJSON "), with the full
-- latency histogram (microseconds: count), so that bench.py can merge runs and take exact percentiles.
-- Every request carries "Connection: close" (health checkers answer one request per connection).
wrk.headers["Connection"] = "close"

done = function(summary, latency, requests)
  local parts = {}
  local lo, hi = latency.min, latency.max
  -- latency(i): the value (us) and count of the i-th populated bucket; #latency: how many there are
  for i = 1, #latency do
    local v, n = latency(i)
    parts[#parts + 1] = string.format("[%d,%d]", v, n)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "min_us": %d, "max_us": %d, ' ..
    '"hist": [%s]}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    summary.requests > 0 and lo or 0, summary.requests > 0 and hi or 0, table.concat(parts, ",")))
end
