-- The same question in the Anthropic dialect: measures /v1/messages with its translation to
-- the OpenAI upstream and back.
wrk.method = "POST"
wrk.body = '{"model":"default","max_tokens":5,"messages":[{"role":"user","content":"Say hello in one word."}]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
