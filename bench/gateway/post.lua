wrk.method = "POST"
wrk.body = '{"model":"default","messages":[{"role":"user","content":"Say hello in one word."}],"max_tokens":5}'
wrk.headers["Content-Type"] = "application/json"
