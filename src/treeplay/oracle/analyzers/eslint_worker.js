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

function lintOne(file) {
  let fatal = null;
  for (const sourceType of ["module", "script"]) {
    const messages = linter.verify(file.text, CONFIGS[sourceType], { filename: path.basename(file.path) });
    const fatalMsg = messages.find((m) => m.fatal);
    if (!fatalMsg) {
      return { messages: messages.map((m) => ({ ruleId: m.ruleId, line: m.line, endLine: m.endLine || m.line,
        message: m.message, severity: m.severity })), fatal: null };
    }
    if (fatal === null) fatal = `line ${fatalMsg.line}: ${fatalMsg.message}`;
  }
  return { messages: [], fatal };
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
