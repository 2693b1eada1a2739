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
        // React on its own, so the sign-in and the list pages do not wait for
        // the canvas (React Flow, d3) or the charts (ECharts, zrender)
        manualChunks(id: string) {
          if (!id.includes("node_modules")) return undefined;
          if (/node_modules\/(react|react-dom|scheduler)\//.test(id)) return "react";
          if (/node_modules\/(@xyflow|d3-|classcat|zustand|@dagrejs)/.test(id)) return "flow";
          if (/node_modules\/(echarts|zrender|tslib)\//.test(id)) return "echarts";
          return undefined;
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
