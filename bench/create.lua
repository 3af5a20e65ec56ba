-- POST /v1/contacts with the seed page's body and a unique email per request.
-- args: API key, run id. Each wrk thread gets its own number in setup().
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  key = args[1]
  run = args[2]
  counter = 0
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. key
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"firstName":"Jane","lastName":"Doe","email":"jane.%s.%d.%d@example.com",' ..
    '"phoneNumber":"+15551234567","status":"POTENTIAL","tag":"lead-2024",' ..
    '"joinedTime":"2024-01-15T10:00:00.000Z","eventName":"Product Demo",' ..
    '"utm":"utm_source=google&utm_medium=cpc","country":"US","timeZone":"America/New_York",' ..
    '"ipAddress":"192.168.1.1","referrerUrl":"https://example.com/signup"}',
    run, tid, counter)
  return wrk.format(nil, "/v1/contacts", nil, body)
end
