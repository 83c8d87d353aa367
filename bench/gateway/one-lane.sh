# Sourced by profile.sh and callgrind.sh: writes $out/nginx.conf (the fixed-answer upstream) and
# $out/switchyard.yaml (one local lane on it, the ledger in $out). Needs $here and $out.
sed "s#BENCH_DIR#$out#g" "$here/nginx.conf" > "$out/nginx.conf"
cat > "$out/switchyard.yaml" <<YAML
providers:
  up: { kind: openai, base_url: "http://127.0.0.1:18090/v1", local: true }
lanes:
  fixed: { provider: up, model: m }
routes:
  default: [fixed]
storage:
  ledger: "$out/ledger.db"
YAML
