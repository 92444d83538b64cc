# agent-gate: the gateway image. There is no build step: tsx is a runtime dependency and the app runs
# its TypeScript sources (src/) directly, so stage 1 only installs production dependencies. The image
# uses Node 24, the active LTS; the code also runs on Node 20.6+ and 22 (package.json "engines"; CI runs 20).
#
#   docker build -t agent-gate .
#   docker run -d -p 8080:8080 -v agent-gate-data:/data agent-gate          # embedded DB in /data
#   docker run -d -p 8080:8080 -e DATABASE_URL=postgres://… agent-gate     # PostgreSQL
#
# Migrations are applied by `serve` at start (under an advisory lock); to run them as a separate step:
#   docker run --rm -e DATABASE_URL=postgres://… agent-gate node bin/agent-gate.js migrate
# The CLI runs in a running container the same way:
#   docker exec <container> node bin/agent-gate.js devices list

# ---- stage 1: production dependencies only ---------------------------------------------------------
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- stage 2: runtime -----------------------------------------------------------------------------
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    DATA_DIR=/data

# Application files stay owned by root (read-only to the process); only /data is writable by `node`.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY config ./config

# /data holds the embedded PGlite database, used only when DATABASE_URL is unset.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]

USER node
EXPOSE 8080

# No curl in slim images: node's built-in fetch. Plain HTTP only: with TLS_CERT set, replace this
# check (e.g. by one against your load balancer) since /healthz is then served over HTTPS.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# node directly (not npm start) so SIGTERM reaches the process and in-flight requests are drained; with
# npm start's node flags (test/unit/deployment.test.ts keeps the two the same; README "Deployment").
CMD ["node", "--max-semi-space-size=2", "bin/agent-gate.js", "serve"]
