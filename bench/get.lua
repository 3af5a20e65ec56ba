-- GET a path with the API key; "{id}" in the path becomes a random id in [1, max_id].
-- args: API key, path, max id.
function init(args)
  key = args[1]
  path = args[2]
  max_id = tonumber(args[3]) or 1
  wrk.headers["Authorization"] = "Bearer " .. key
end

function request()
  local p = string.gsub(path, "{id}", tostring(math.random(1, max_id)))
  return wrk.format("GET", p)
end
