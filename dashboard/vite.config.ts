import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { jobwireGraphQL } from './build/graphql-documents.js';

/**
 * The dashboard is built into dist/dashboard and served by the API at /dashboard (src/api/dashboard.ts):
 * one origin, no CDN, no second server. Its GraphQL documents are checked against schema.graphql here.
 */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/dashboard/',
  publicDir: false,
  plugins: [
    jobwireGraphQL({
      schemaPath: fileURLToPath(new URL('../schema.graphql', import.meta.url)),
      sharedFragmentsPath: fileURLToPath(new URL('./src/operations/fragments.graphql', import.meta.url)),
    }),
  ],
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    assetsDir: 'assets',
    reportCompressedSize: false,
  },
  logLevel: 'warn',
});
