// Builds the RIS viewer bundle into ../../static/viewer/ (run by `make viewer`).
//
// cornerstone3D finds its decode worker and WASM codecs with `new URL(spec, import.meta.url)`,
// which esbuild leaves alone. This plugin rewrites each such URL to a file beside the bundle
// (copied there, or built as its own entry point) so that everything is served by the RIS.
import * as esbuild from "esbuild";
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = resolve(here, "../../static/viewer");
// JPEG XL is not a transfer syntax the RIS accepts: its 1 MB codec is left out.
const SKIP = new Set(["jpegxlwasm_decode.wasm", "jpegxlwasm_encode.wasm"]);
const URL_RE = /new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g;

const assetUrls = {
  name: "asset-urls",
  setup(build) {
    build.onLoad({ filter: /@cornerstonejs[\\/].*\.js$/ }, async (args) => {
      let text = readFileSync(args.path, "utf8");
      if (!text.includes("import.meta.url")) return null;
      const found = [...text.matchAll(URL_RE)];
      for (const m of found) {
        const spec = m[2];
        let target;
        if (spec.startsWith(".") || (!spec.startsWith("@") && spec.endsWith(".wasm"))) {
          target = resolve(dirname(args.path), spec);
        } else {
          const r = await build.resolve(spec, { kind: "import-statement", resolveDir: dirname(args.path) });
          if (r.errors.length) throw new Error(`cannot resolve ${spec}`);
          target = r.path;
        }
        const name = basename(target);
        let replacement;
        if (name.endsWith(".wasm")) {
          if (SKIP.has(name)) continue;
          copyFileSync(target, join(outdir, name));
          replacement = `new URL(${JSON.stringify(name)}, import.meta.url)`;
        } else if (name === "decodeImageFrameWorker.js") {
          replacement = `new URL("decodeImageFrameWorker.js", import.meta.url)`;
        } else {
          // Other workers (segmentation statistics) are not used by the viewer.
          replacement = `new URL("unused-worker.js", import.meta.url)`;
        }
        text = text.replace(m[0], replacement);
      }
      return { contents: text, loader: "js" };
    });
  },
};

rmSync(outdir, { recursive: true, force: true });
mkdirSync(outdir, { recursive: true });
const loaderDir = dirname(fileURLToPath(import.meta.resolve("@cornerstonejs/dicom-image-loader")));
await esbuild.build({
  entryPoints: {
    viewer: resolve(here, "src/main.js"),
    decodeImageFrameWorker: join(loaderDir, "decodeImageFrameWorker.js"),
  },
  outdir,
  bundle: true,
  format: "esm",
  splitting: false,
  minify: true,
  sourcemap: false,
  target: ["chrome110", "firefox115", "safari16"],
  legalComments: "linked",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
  // Emscripten glue and a few packages have Node branches (require("fs")) that a browser
  // never takes: they get empty stand-ins.
  alias: {
    events: resolve(here, "src/shims/events.js"),
    ...Object.fromEntries(
      ["fs", "path", "crypto", "module", "url", "worker_threads"].map((m) => [m, resolve(here, "src/shims/empty.js")]),
    ),
  },
  plugins: [assetUrls],
});
copyFileSync(resolve(here, "src/viewer.css"), join(outdir, "viewer.css"));
let total = 0;
for (const f of readdirSync(outdir)) total += statSync(join(outdir, f)).size;
console.log(`static/viewer: ${(total / 1024 / 1024).toFixed(2)} MiB`);
