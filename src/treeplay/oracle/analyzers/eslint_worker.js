// Long-lived eslint worker for treeplay's oracle. Protocol: one JSON request per stdin line,
// {"files": [{"path": "...", "text": "..."}]}, one JSON response per stdout line,
// {"results": [{"messages": [...], "fatal": "..." | null}]}. Started once per Oracle.
"use strict";
const path = require("path");
const readline = require("readline");
const toolsDir = process.env.TREEPLAY_JS_TOOLS;
const req = (name) => require(require.resolve(name, { paths: [toolsDir] }));
const { Linter } = req("eslint");
const security = req("eslint-plugin-security");

const RULES = Object.assign({}, security.configs.recommended.rules, {
  "no-eval": "error",
  "no-implied-eval": "error",
  "no-new-func": "error",
  "no-script-url": "error",
});

function config(sourceType) {
  return [{
    files: ["**/*.js", "**/*.jsx", "**/*.mjs"],
    plugins: { security },
    languageOptions: {
      ecmaVersion: "latest",
      sourceType,
      parserOptions: { ecmaFeatures: { jsx: true, globalReturn: sourceType === "script" } },
    },
    rules: RULES,
  }];
}

const linter = new Linter({ configType: "flat" });
const CONFIGS = { module: config("module"), script: config("script") };

// Lint `text` as a module, then as a script (global return); null when neither parses.
function lintText(text, filename, offset) {
  let fatal = null;
  for (const sourceType of ["module", "script"]) {
    const messages = linter.verify(text, CONFIGS[sourceType], { filename });
    const fatalMsg = messages.find((m) => m.fatal);
    if (!fatalMsg) {
      const back = (line) => Math.max(1, line - offset);
      return { messages: messages.map((m) => ({ ruleId: m.ruleId, line: back(m.line),
        endLine: back(m.endLine || m.line), message: m.message, severity: m.severity })), fatal: null };
    }
    if (fatal === null) fatal = `line ${Math.max(1, fatalMsg.line - offset)}: ${fatalMsg.message}`;
  }
  return { messages: [], fatal };
}

// The fragment as is; when it does not parse, the first repair candidate (sent by treeplay's
// prepare.js_repair_candidates, each with its line offset) that does. Lines are reported in the
// fragment's own numbering.
function lintOne(file) {
  const filename = path.basename(file.path);
  const own = lintText(file.text, filename, 0);
  if (own.fatal === null) return own;
  for (const candidate of file.candidates || []) {
    const repaired = lintText(candidate.text, filename, candidate.offset);
    if (repaired.fatal === null) return Object.assign(repaired, { repair: candidate.name });
  }
  return own;
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let response;
  try {
    const request = JSON.parse(line);
    response = { results: request.files.map(lintOne) };
  } catch (err) {
    response = { error: String(err && err.stack || err) };
  }
  process.stdout.write(JSON.stringify(response) + "\n");
});
