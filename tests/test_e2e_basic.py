def test_dump_apex(apex, brain):
    apex.answer("brain_dump", ["- [ ] call ", "Sam"], model_id="gemma27b", cost=0.0)
    r = brain("dump", "call Sam", "--json")
    print(r.stderr)
    assert r.code == 0, r.stderr
    j = r.json
    assert j["answer"] == "- [ ] call Sam"
    assert j["backend"] == "apex" and j["model"] == "gemma27b" and j["route"] == "brain_dump"


def test_local(ollama, brain):
    r = brain("--offline", "dump", "x")
    assert r.code == 0, r.stderr
    assert r.stdout == "local answer\n"
