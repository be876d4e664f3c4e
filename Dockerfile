# Image of the `distillery` command, for the hub and for each participant node.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
COPY scripts ./scripts
COPY prisma ./prisma
COPY prisma.config.ts ./
COPY proto ./proto
# Development dependencies stay: the CLI runs TypeScript through tsx, and the install step
# generates the Prisma client and the gRPC types (prisma and the generators are dev tools).
RUN npm ci --include=dev --no-audit --no-fund
COPY . .
ENTRYPOINT ["node", "bin/distillery.js"]
