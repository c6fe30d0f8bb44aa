-- Classic TechEmpower pipelining script: every write carries `depth` (default 1) copies of the
-- request, so wrk keeps that many requests in flight per connection and counts every response.
-- Usage: wrk ... -s bench/pipeline.lua http://127.0.0.1:PORT/ -- 16

init = function(args)
  local r = {}
  local depth = tonumber(args[1]) or 1
  for i = 1, depth do
    r[i] = wrk.format()
  end
  req = table.concat(r)
end

request = function()
  return req
end
