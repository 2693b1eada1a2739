/// <reference types="vitest/config" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// The console is served by `waymark serve` at `/` (src/server/static.c):
// hashed bundles under /assets/ are cached for a year, index.html revalidated.
// `npm run dev` proxies the API to a server on 127.0.0.1:8106.
export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 1500,
    rollupOptions: {
      output: {
        manualChunks: {
          echarts: ["echarts/core", "echarts/charts", "echarts/components", "echarts/renderers"],
          flow: ["@xyflow/react"],
        },
      },
    },
  },
  server: {
    proxy: { "/api": "http://127.0.0.1:8106" },
  },
  test: {
    environment: "jsdom",
    include: ["tests/**/*.test.ts", "tests/**/*.test.tsx"],
  },
});
