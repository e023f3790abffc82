// Vite builds the UI into dist/, which the zrocket binary serves (no Node at run time).
// In `npm run dev`, /api is proxied to a zrocket server on ZROCKET_URL (default :8011).
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // The Zero client is one large module; one chunk is fine for a demo app.
    chunkSizeWarningLimit: 2000,
  },
  server: {
    proxy: {
      '/api': process.env.ZROCKET_URL ?? 'http://127.0.0.1:8011',
    },
  },
});
