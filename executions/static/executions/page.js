// The browser page: the editor (CodeMirror, or the plain textarea without it) with the program's
// files and arguments, where Tab indents; Run submits through the REST API with the session's
// CSRF token, and the result follows the execution until its status is terminal: its event stream
// (status changes and output as the program writes it), or, where the server cannot stream, polling.
// Program output is untrusted: it only ever reaches the page through textContent.
"use strict";

(function () {
  const INDENT = "    ";
  const form = document.getElementById("run-form");
  if (!form) {
    return;
  }
  const code = document.getElementById("code");
  const runButton = document.getElementById("run");
  const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const terminal = new Set(JSON.parse(document.getElementById("terminal-statuses").textContent));

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(id, text) {
    byId(id).textContent = text;
  }

  function showMessage(id, text) {
    const node = byId(id);
    node.textContent = text || "";
    node.hidden = !text;
  }

  // Django's labels for the status values: "timed_out" reads "Timed Out".
  function statusLabel(status) {
    return status.split("_").map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join(" ");
  }

  // --- The editor ------------------------------------------------------------------------------

  // The textarea is the form's source of truth for the file shown. CodeMirror, once its files have
  // loaded, edits it from above (with the catalog's mode for the language); without them the
  // textarea stays, with the same keys.
  let editor = null;

  // Indent (or with outdent, dedent) the selected lines; with no multi-line selection, Tab just
  // inserts an indent at the cursor.
  function indent(area, outdent) {
    const value = area.value;
    const start = area.selectionStart;
    let end = area.selectionEnd;
    if (!outdent && !value.slice(start, end).includes("\n")) {
      area.setRangeText(INDENT, start, end, "end");
      return;
    }
    const lineStart = start === 0 ? 0 : value.lastIndexOf("\n", start - 1) + 1;
    // A selection that ends just after a newline does not take in the next line.
    if (end > lineStart && value[end - 1] === "\n") {
      end -= 1;
    }
    const block = value.slice(lineStart, end);
    const changed = outdent ? block.replace(/^( {1,4}|\t)/gm, "") : block.replace(/^/gm, INDENT);
    area.setRangeText(changed, lineStart, end, "select");
  }

  // Escape, then Tab, moves the focus on as usual, so that keyboard users are never trapped here.
  let tabReleased = false;
  code.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      tabReleased = true;
      return;
    }
    if (event.key === "Shift") {
      return;
    }
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
      return;
    }
    const released = tabReleased;
    tabReleased = false;
    if (event.key !== "Tab" || event.ctrlKey || event.altKey || event.metaKey || released) {
      return;
    }
    event.preventDefault();
    indent(code, event.shiftKey);
  });

  // The same keys in CodeMirror.
  function editorKeys() {
    const tab = (outdent) => (cm) => {
      if (outdent || cm.getSelection().includes("\n")) {
        cm.execCommand(outdent ? "indentLess" : "indentMore");
      } else {
        cm.replaceSelection(INDENT, "end");
      }
    };
    const run = () => form.requestSubmit();
    return { Tab: tab(false), "Shift-Tab": tab(true), "Ctrl-Enter": run, "Cmd-Enter": run };
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.addEventListener("load", resolve);
      script.addEventListener("error", () => reject(new Error("could not load " + src)));
      document.head.appendChild(script);
    });
  }

  function loadStyle(href) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }

  async function startEditor() {
    const base = form.dataset.editorBase;
    try {
      await loadScript(base + "lib/codemirror.js");
      await Promise.all([loadScript(base + "mode/meta.js"), loadScript(base + "addon/mode/loadmode.js")]);
    } catch (error) {
      // Not installed (or not reachable): the textarea stays, which has the same keys.
      form.dataset.editor = "textarea";
      return;
    }
    loadStyle(base + "lib/codemirror.css");
    CodeMirror.modeURL = base + "mode/%N/%N.js";
    editor = CodeMirror.fromTextArea(code, {
      lineNumbers: true,
      indentUnit: INDENT.length,
      tabSize: INDENT.length,
      indentWithTabs: false,
      // A contenteditable input is what screen readers follow best.
      inputStyle: "contenteditable",
      extraKeys: editorKeys(),
      viewportMargin: Infinity,
    });
    // Every change reaches the textarea at once: the form reads the program from there.
    editor.on("changes", () => editor.save());
    editor.on("keydown", (cm, event) => {
      if (event.key === "Tab" && tabReleased) {
        // CodeMirror leaves this key alone: the browser moves the focus on.
        event.codemirrorIgnore = true;
      }
      if (event.key !== "Shift") {
        tabReleased = event.key === "Escape";
      }
    });
    setMode();
    form.dataset.editor = "codemirror";
  }

  // The mode of the chosen language, as the catalog names it; its file loads on first use.
  function setMode() {
    if (!editor) {
      return;
    }
    const mime = chosenLanguage().dataset.editorMode;
    editor.setOption("mode", mime);
    const info = CodeMirror.findModeByMIME(mime);
    if (info) {
      CodeMirror.autoLoadMode(editor, info.mode);
    }
  }

  function showText(text) {
    code.value = text;
    if (editor) {
      editor.setValue(text);
      editor.clearHistory();
    }
  }

  function focusEditor() {
    (editor || code).focus();
  }

  // --- Files and arguments ---------------------------------------------------------------------

  const languageMenu = byId("language");
  const nameInput = byId("file-name");
  const rules = JSON.parse(byId("file-rules").textContent);
  // An execution's page starts with its program: its entry point (the code) and its other files.
  const program = JSON.parse(byId("draft-program").textContent) || { files: [], args: [] };

  function chosenLanguage() {
    return languageMenu.selectedOptions[0];
  }

  function entryName() {
    return chosenLanguage().dataset.source;
  }

  const files = [{ name: entryName(), content: code.value }].concat(
    program.files.map((file) => ({ name: file.name, content: file.content, encoding: file.encoding })),
  );
  let shown = 0;
  byId("args").value = program.args.join("\n");

  // As the API says: the file named like the language's entry file, else the first.
  function entryIndex() {
    const named = files.findIndex((file) => file.name === entryName());
    return named === -1 ? 0 : named;
  }

  // languages.safe_name's rules: a relative path of plain, printable parts.
  function safeName(name) {
    const parts = name.split("/");
    return parts.length <= rules.max_parts && parts.every((part) => part && part !== "." && part !== ".." &&
      !part.startsWith(".") && [...part].length <= rules.max_part && !/[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}|\\/u.test(part));
  }

  // What the server would say of the files' names (it stays the judge: its answer is shown too).
  function fileProblem() {
    if (files.length === 1) {
      return "";
    }
    const entry = entryIndex();
    const names = [entryName()];
    for (const [index, { name }] of files.entries()) {
      if (index === entry) {
        continue;
      }
      if (!safeName(name) || rules.reserved.includes(name)) {
        return `files: '${name}' is not a safe relative file name (no absolute path, no \`..\`, no hidden part).`;
      }
      if (names.some((other) => other === name || other.startsWith(name + "/") || name.startsWith(other + "/"))) {
        return `files: '${name}' is named twice (the entry point is ${entryName()}).`;
      }
      names.push(name);
    }
    return "";
  }

  function keepShown() {
    files[shown].content = editor ? editor.getValue() : code.value;
  }

  function renderFiles() {
    const entry = entryIndex();
    const tabs = files.map((file, index) => {
      const tab = document.createElement("button");
      tab.type = "button";
      tab.className = "file-tab";
      tab.setAttribute("role", "tab");
      tab.setAttribute("aria-selected", String(index === shown));
      tab.textContent = file.name + (file.encoding === "base64" ? " (base64)" : "");
      if (index === entry) {
        tab.dataset.entry = "true";
        tab.title = "The entry point";
      }
      tab.addEventListener("click", () => {
        keepShown();
        show(index);
      });
      return tab;
    });
    byId("file-tabs").replaceChildren(...tabs);
    byId("remove-file").disabled = files.length === 1;
    showMessage("file-error", fileProblem());
  }

  function show(index) {
    shown = index;
    showText(files[index].content);
    nameInput.value = files[index].name;
    renderFiles();
  }

  nameInput.addEventListener("input", () => {
    files[shown].name = nameInput.value;
    renderFiles();
  });

  byId("add-file").addEventListener("click", () => {
    keepShown();
    const dot = entryName().lastIndexOf(".");
    const extension = dot > 0 ? entryName().slice(dot) : "";
    let number = files.length;
    while (files.some((file) => file.name === `file${number}${extension}`)) {
      number += 1;
    }
    files.push({ name: `file${number}${extension}`, content: "" });
    show(files.length - 1);
    nameInput.select();
    nameInput.focus();
  });

  byId("remove-file").addEventListener("click", () => {
    if (files.length > 1) {
      files.splice(shown, 1);
      show(Math.min(shown, files.length - 1));
      focusEditor();
    }
  });

  // A new language brings its mode, and its entry file's name to a file still empty under the
  // previous one's.
  let previousEntryName = entryName();
  languageMenu.addEventListener("change", () => {
    keepShown();
    for (const file of files) {
      if (file.name === previousEntryName && !file.content.trim()) {
        file.name = entryName();
      }
    }
    previousEntryName = entryName();
    nameInput.value = files[shown].name;
    setMode();
    renderFiles();
  });

  // One argument per line; the empty lines at the end are not arguments.
  // One argument per line; the empty lines at the end (the textarea's newlines) are none.
  function argumentLines(text) {
    const lines = text.split("\n");
    while (lines.length && lines[lines.length - 1] === "") {
      lines.pop();
    }
    return lines;
  }

  function argumentList() {
    return argumentLines(byId("args").value);
  }

  // A one-file program goes as `code`, as it always has; more go as `files`, with their names.
  function programFields() {
    keepShown();
    if (files.length === 1 && files[0].encoding !== "base64") {
      return { code: files[0].content };
    }
    return {
      files: files.map(({ name, content, encoding }) => (encoding === "base64" ? { name, content, encoding } : { name, content })),
    };
  }

  nameInput.value = files[0].name;
  renderFiles();
  byId("files").hidden = false;
  startEditor();

  // --- Tests ----------------------------------------------------------------------------------

  function addTest(focus) {
    const row = byId("test-case-template").content.firstElementChild.cloneNode(true);
    row.querySelector(".remove-test").addEventListener("click", () => row.remove());
    byId("test-cases").appendChild(row);
    if (focus) {
      row.querySelector(".test-stdin").focus();
    }
  }

  byId("add-test").addEventListener("click", () => addTest(true));

  // A judged execution's page starts with its tests in the editor, to run again.
  const draft = JSON.parse(byId("draft-tests").textContent);
  if (draft && draft.tests.length) {
    for (const test of draft.tests) {
      addTest(false);
      const row = byId("test-cases").lastElementChild;
      row.querySelector(".test-name").value = test.name;
      row.querySelector(".test-stdin").value = test.stdin;
      row.querySelector(".test-expected").value = test.expected_output;
      row.querySelector(".test-args").value = (test.args || []).join("\n");
    }
    byId("comparison").value = draft.comparison;
    byId("abs-tolerance").value = draft.abs_tolerance === null ? "" : draft.abs_tolerance;
    byId("rel-tolerance").value = draft.rel_tolerance === null ? "" : draft.rel_tolerance;
    byId("stop-on-first-failure").checked = draft.stop_on_first_failure;
    byId("tests-editor").open = true;
  }

  // Tolerances apply to the float comparison only.
  function showTolerances() {
    byId("tolerances").hidden = byId("comparison").value !== "float";
  }
  byId("comparison").addEventListener("change", showTolerances);
  showTolerances();

  function testCases(programArgs) {
    return Array.from(document.querySelectorAll("#test-cases .test-case"), (row) => {
      const own = argumentLines(row.querySelector(".test-args").value);
      return {
        name: row.querySelector(".test-name").value,
        stdin: row.querySelector(".test-stdin").value,
        expected_output: row.querySelector(".test-expected").value,
        // A judged program runs once per test, each with the test's own arguments: its own, or
        // else the program's.
        args: own.length ? own : programArgs,
      };
    });
  }

  function judgingOptions() {
    const options = { comparison: byId("comparison").value };
    if (options.comparison === "float") {
      for (const [field, id] of [["abs_tolerance", "abs-tolerance"], ["rel_tolerance", "rel-tolerance"]]) {
        if (byId(id).value !== "") {
          options[field] = Number(byId(id).value);
        }
      }
    }
    if (byId("stop-on-first-failure").checked) {
      options.stop_on_first_failure = true;
    }
    return options;
  }

  function submission() {
    const body = { language: languageMenu.value, ...programFields(), stdin: byId("stdin").value };
    const args = argumentList();
    if (args.length) {
      body.args = args;
    }
    const tests = testCases(args);
    if (tests.length) {
      body.tests = tests;
      Object.assign(body, judgingOptions());
    }
    return body;
  }

  function cell(text) {
    const node = document.createElement("td");
    node.textContent = text === undefined || text === null ? "–" : String(text);
    return node;
  }

  function renderTests(data) {
    byId("judging").hidden = !data.test_results.length && !data.verdict;
    const verdict = byId("verdict");
    verdict.textContent = data.verdict ? statusLabel(data.verdict) : "";
    verdict.dataset.status = data.verdict || "";
    setText("test-counts", data.tests_passed === null ? "" : `${data.tests_passed} passed, ${data.tests_failed} failed`);
    const rows = data.test_results.map((result) => {
      const row = document.createElement("tr");
      const outputs = ["stdout", "stderr"].map((stream) => {
        const output = document.createElement("td");
        const pre = document.createElement("pre");
        pre.className = "output";
        pre.textContent = result[stream] || "";
        output.appendChild(pre);
        return output;
      });
      row.append(
        cell(result.name), cell(statusLabel(result.verdict)), cell(result.exit_code), cell(result.cpu_time_ms),
        cell(result.wall_time_ms), cell(result.memory_kb), ...outputs,
      );
      row.dataset.verdict = result.verdict;
      return row;
    });
    byId("test-results").tBodies[0].replaceChildren(...rows);
  }

  // --- Submitting ------------------------------------------------------------------------------

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showMessage("form-error", "");
    runButton.disabled = true;
    try {
      const response = await fetch("/api/v1/executions", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", Accept: "application/json", "X-CSRFToken": csrfToken },
        body: JSON.stringify(submission()),
      });
      const body = await response.json().catch(() => null);
      if (response.status === 202 && body) {
        // The execution's own page shows it, follows it, and lists it in the history.
        window.location.assign("/executions/" + encodeURIComponent(body.task_id));
        return;
      }
      showMessage("form-error", body && body.error ? body.error.message : `The server answered ${response.status}.`);
    } catch (error) {
      showMessage("form-error", "The server could not be reached. Try again.");
    }
    runButton.disabled = false;
  });

  // --- The result ------------------------------------------------------------------------------

  function render(data) {
    byId("result").hidden = false;
    const status = byId("status");
    status.textContent = statusLabel(data.status);
    status.dataset.status = data.status;
    setText("exit-code", data.exit_code === null ? "–" : String(data.exit_code));
    setText("duration", data.duration_ms === null ? "–" : (data.duration_ms / 1000).toFixed(2) + " s");
    setText("task-id", data.task_id);
    setText("stdout", data.stdout);
    setText("stderr", data.stderr);
    byId("stdout-truncated").hidden = !data.stdout_truncated;
    byId("stderr-truncated").hidden = !data.stderr_truncated;
    showMessage("platform-error", data.error);
    renderTests(data);
    for (const cell of document.querySelectorAll("#history .status")) {
      if (cell.dataset.taskId === data.task_id) {
        cell.textContent = statusLabel(data.status);
        cell.dataset.status = data.status;
      }
    }
  }

  // Ask again until the status is terminal: every 250 ms for the first 2 s, where most runs end,
  // then less and less often, down to every 2 s.
  function follow(taskId, attempt) {
    const delay = attempt < 8 ? 250 : Math.min(500 * (attempt - 6), 2000);
    window.setTimeout(async () => {
      let response;
      try {
        response = await fetch("/api/v1/executions/" + encodeURIComponent(taskId), {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
        });
      } catch (error) {
        follow(taskId, attempt + 1);
        return;
      }
      const body = await response.json().catch(() => null);
      if (response.ok && body) {
        render(body);
        if (!terminal.has(body.status)) {
          follow(taskId, attempt + 1);
        }
      } else if (response.status >= 500 || response.status === 429) {
        follow(taskId, attempt + 1);
      } else {
        showMessage("platform-error", body && body.error ? body.error.message : `The server answered ${response.status}.`);
      }
    }, delay);
  }

  function showStatus(taskId, status) {
    const node = byId("status");
    node.textContent = statusLabel(status);
    node.dataset.status = status;
    for (const cell of document.querySelectorAll("#history .status")) {
      if (cell.dataset.taskId === taskId) {
        cell.textContent = statusLabel(status);
        cell.dataset.status = status;
      }
    }
  }

  // The execution's event stream, with the session's cookie: its owner's only, like the GET. The
  // output grows as it comes; the execution at the end replaces it with the stored result.
  // EventSource reconnects by itself with the last event's id, and the server resumes after it;
  // a stream that fails before its first event falls back to polling, as the page does from the
  // start where its server cannot stream (live-events).
  function stream(taskId) {
    const source = new EventSource("/api/v1/executions/" + encodeURIComponent(taskId) + "/events");
    // Bytes shown per stream: a chunk sent again after a reconnection is not shown twice.
    const shown = { stdout: 0, stderr: 0 };
    let heard = false;
    let attempt = 0;
    source.addEventListener("status", (event) => {
      heard = true;
      attempt = 0;
      const status = JSON.parse(event.data).status;
      if (status === "queued") {
        // Queued again (its engine failed before it ran): the next run's output starts over.
        shown.stdout = shown.stderr = 0;
      }
      showStatus(taskId, status);
    });
    source.addEventListener("output", (event) => {
      heard = true;
      attempt = 0;
      const chunk = JSON.parse(event.data);
      if (!(chunk.stream in shown) || chunk.offset < shown[chunk.stream]) {
        return;
      }
      if (chunk.offset === 0) {
        // A run that starts again (its execution queued again) starts its output again.
        setText(chunk.stream, "");
      }
      byId(chunk.stream).append(chunk.data);
      shown[chunk.stream] = chunk.offset + chunk.length;
      if (chunk.truncated) {
        byId(chunk.stream + "-truncated").hidden = false;
      }
    });
    source.addEventListener("execution", (event) => {
      source.close();
      render(JSON.parse(event.data));
    });
    source.addEventListener("error", () => {
      attempt += 1;
      if (!heard || attempt > 5) {
        source.close();
        follow(taskId, 0);
      }
    });
  }

  const initial = JSON.parse(byId("execution-data").textContent);
  if (initial) {
    render(initial);
    if (!terminal.has(initial.status)) {
      if (window.EventSource && JSON.parse(byId("live-events").textContent)) {
        stream(initial.task_id);
      } else {
        follow(initial.task_id, 0);
      }
    }
  }

  // Switching tenants needs no extra click when scripts run.
  const tenantChoice = byId("tenant-choice");
  if (tenantChoice) {
    tenantChoice.addEventListener("change", () => tenantChoice.form.requestSubmit());
  }
})();
