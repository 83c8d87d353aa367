-- Warm-up run that also checks every answer: status 200 and EXPECT (default `"choices"`) in
-- the body. Loads the request from BASE (post.lua or post-messages.lua). Kept out of the timed
-- runs because a response() hook makes wrk hand every body to Lua, which slows the client.
local here = os.getenv("WRK_DIR")
dofile(here .. "/" .. (os.getenv("WRK_BASE") or "post.lua"))
local expect = os.getenv("WRK_EXPECT") or '"choices"'
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  first_bad = ""
end

function response(status, headers, body)
  if status ~= 200 or not string.find(body, expect, 1, true) then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. " " .. string.sub(body, 1, 200)
    end
  end
end

function done(summary, latency, requests)
  local total, first = 0, ""
  for _, t in ipairs(threads) do
    total = total + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  io.write(string.format("checked: %d responses, %d bad\n", summary.requests, total))
  if total > 0 then io.write("first bad: " .. first .. "\n") end
end
