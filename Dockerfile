# One image for every Jobwire process; the compose file picks the command.

# Build: every dependency, then TypeScript compiled to dist/ (dist/src/..., dist/migrations/...) and the
# dashboard built into dist/dashboard (its GraphQL checked against schema.graphql).
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json schema.graphql ./
COPY src ./src
COPY migrations ./migrations
COPY dashboard ./dashboard
RUN npm run build

# Runtime: production dependencies and the compiled JavaScript only.
FROM node:22-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
RUN mkdir -p /data/storage && chown -R node:node /data
USER node
ENV STORAGE_DIR=/data/storage PORT=4000
EXPOSE 4000
# node is PID 1 (no npm or tsx in front): docker stop's SIGTERM reaches the handler that drains (src/process/run-until-signal.ts).
CMD ["node", "dist/src/api/main.js"]
