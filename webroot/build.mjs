// `npm run build`: bundles each page's module (sip.js included, shared code split into a
// common chunk) with esbuild into dist/, and copies the HTML and CSS there. No network.
import * as esbuild from "esbuild";
import fs from "node:fs";
import path from "node:path";

const src = "src";
const dist = "dist";
const pages = ["demo1", "demo2", "phone"];

fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist, { recursive: true });

// SIP.js's default RTCConfiguration names a public STUN server. The pages always pass
// `iceServers: []`; this also removes the default from the bundle, so a page that forgot
// could not reach outside either.
const noPublicStun = {
  name: "no-public-stun",
  setup(b) {
    b.onLoad({ filter: /peer-connection-configuration-default\.js$/ }, async (args) => {
      const text = await fs.promises.readFile(args.path, "utf8");
      const out = text.replace(/iceServers:\s*\[\{\s*urls:\s*"stun:stun\.l\.google\.com:19302"\s*\}\]/, "iceServers: []");
      if (out === text) throw new Error("sip.js default STUN server not found: check the patch in build.mjs");
      return { contents: out, loader: "js" };
    });
  },
};

const result = await esbuild.build({
  entryPoints: pages.map((p) => path.join(src, `${p}.js`)),
  outdir: dist,
  bundle: true,
  splitting: true, // sip.js and common.js go into one shared chunk
  format: "esm",
  chunkNames: "chunks/[name]-[hash]",
  minify: true,
  sourcemap: true,
  target: ["chrome109", "firefox115", "safari16", "edge109"],
  legalComments: "linked",
  logLevel: "info",
  metafile: true,
  plugins: [noPublicStun],
});

for (const f of fs.readdirSync(src)) {
  if (/\.(html|css|svg)$/.test(f)) fs.copyFileSync(path.join(src, f), path.join(dist, f));
}

const bytes = Object.entries(result.metafile.outputs)
  .filter(([f]) => f.endsWith(".js"))
  .reduce((n, [, o]) => n + o.bytes, 0);
console.log(`build: ${pages.length} pages into ${dist}/ (${Math.round(bytes / 1024)} KiB of JavaScript)`);
