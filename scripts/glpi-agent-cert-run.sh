#!/usr/bin/env bash
# Runs a real GLPI Agent (from a source checkout) against this gateway over HTTPS with a client certificate
# (TLS_CLIENT_CA, TLS_CLIENT_CERT=optional), then revokes the certificate and runs the agent again.
#
#   scripts/glpi-agent-cert-run.sh /path/to/glpi-agent-checkout
#
# Everything is on 127.0.0.1 and thrown away afterwards: a test CA, server and client certificates made with
# openssl, and a PostgreSQL schema of its own in $PG_URL (default postgres://postgres@127.0.0.1:5432/postgres).
# The agent needs its Perl dependencies (on Debian: libwww-perl liblwp-protocol-https-perl
# libio-socket-ssl-perl libuniversal-require-perl libtext-template-perl libxml-libxml-perl libyaml-tiny-perl
# libcpanel-json-xs-perl libfile-which-perl libnet-ip-perl libdata-uuid-perl libdatetime-perl).
# The agent's logs are left in the work directory, which is printed; set KEEP=1 to keep it.
set -euo pipefail

AGENT=${1:?usage: $0 /path/to/glpi-agent-checkout}
AGENT=$(cd "$AGENT" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
PORT=${PORT:-18443}
SCHEMA="agent_gate_cert_run_$$"
WORK=$(mktemp -d /tmp/agent-gate-cert-run.XXXXXX)
export DATABASE_URL="$PG_URL?search_path=$SCHEMA"
GATEWAY_PID=

cleanup() {
  [ -n "$GATEWAY_PID" ] && kill "$GATEWAY_PID" 2>/dev/null && wait "$GATEWAY_PID" 2>/dev/null
  psql "$PG_URL" -qAtc "set client_min_messages = warning; drop schema if exists $SCHEMA cascade" >/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

cd "$WORK"
cat > ext.cnf <<'EOF'
[server]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[client]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = clientAuth
EOF
EC=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${EC[@]}" -keyout ca.key -out ca.pem -days 2 -subj "/CN=agent-gate run CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
for leaf in server:127.0.0.1 client:glpi-agent-run; do
  name=${leaf%%:*} cn=${leaf#*:}
  openssl req -new "${EC[@]}" -keyout "$name.key" -out "$name.csr" -subj "/O=agent-gate run/CN=$cn" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -set_serial "$RANDOM" -days 2 \
    -extfile ext.cnf -extensions "$name" -out "$name.crt" 2>/dev/null
done
cat client.crt client.key > client.pem # the agent's ssl-cert-file: certificate and key in one file
FINGERPRINT=$(openssl x509 -in client.crt -noout -fingerprint -sha256 | cut -d= -f2)

psql "$PG_URL" -qAtc "create schema $SCHEMA" >/dev/null
(cd "$ROOT" && exec env TLS_CERT="$WORK/server.crt" TLS_KEY="$WORK/server.key" TLS_CLIENT_CA="$WORK/ca.pem" \
  TLS_CLIENT_CERT=optional HOST=127.0.0.1 PORT="$PORT" SECRET_CACHE_TTL=0 LOG_LEVEL=info \
  node bin/agent-gate.js serve > "$WORK/gateway.log" 2>&1) &
GATEWAY_PID=$!
ready=0
for _ in $(seq 1 100); do
  kill -0 "$GATEWAY_PID" 2>/dev/null || break
  curl -sf --cacert ca.pem "https://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && ready=1 && break
  sleep 0.2
done
if [ "$ready" != 1 ]; then
  echo "the gateway did not become ready on 127.0.0.1:$PORT (port in use?):" >&2
  cat gateway.log >&2
  exit 1
fi

# ssl-cert-file is a configuration-file setting of the agent (no command-line option).
cat > agent.cfg <<EOF
server = https://127.0.0.1:$PORT/
ca-cert-file = $WORK/ca.pem
ssl-cert-file = $WORK/client.pem
EOF
run_agent() {
  (cd "$AGENT" && perl -Ilib bin/glpi-agent --conf-file "$WORK/agent.cfg" --vardir "$WORK/var" \
    --no-task=deploy,esx,collect,netdiscovery,netinventory,remoteinventory,wakeonlan \
    --force --no-httpd --logger=stderr --debug) > "$WORK/$1.log" 2>&1 || true
}
mkdir -p var
run_agent agent-run1
echo "== run 1 (certificate $FINGERPRINT): [error] lines, then the gateway's view"
grep -F '[error]' agent-run1.log || echo "(no [error] lines)"
grep -E '^\[info\]' agent-run1.log
(cd "$ROOT" && node bin/agent-gate.js registrations list --limit 5 --json) | node -e '
  for (const r of JSON.parse(require("fs").readFileSync(0, "utf8")).reverse())
    console.log([r.kind, r.format, r.status, r.outcome, r.authType, r.certSubject, r.certFingerprint].join(" "));'
(cd "$ROOT" && node bin/agent-gate.js certs list)

(cd "$ROOT" && node bin/agent-gate.js certs revoke --fingerprint "$FINGERPRINT")
run_agent agent-run2
echo "== run 2 (certificate revoked)"
grep -E '^\[(info|error)\]' agent-run2.log || true
grep -F 'security event' gateway.log || true
echo "logs: $WORK/agent-run1.log $WORK/agent-run2.log $WORK/gateway.log"
