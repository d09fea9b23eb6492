"""treeplay.tasks: the `Task` record and loaders for every supported dataset format.

`load_tasks(path)` auto-detects the format from the file's content or the directory's layout;
pass `format=` to override. Formats:

| format         | what                                                            |
|----------------|-----------------------------------------------------------------|
| `safecoder`    | SafeCoder/SVEN JSONL pairs (`func_src_before`/`func_src_after`)  |
| `annotated`    | the same rows with the TSP reference's GPT-4o risk-node `output` |
| `sec-eval`     | SafeCoder/SVEN eval scenario directories (`info.json`, ...)      |
| `securityeval` | SecurityEval JSON/JSONL (`ID`, `Prompt`, `Insecure_code`)        |
| `multilang`    | TSP reference multi-language prompts (`prompt`, `original_code`) |
| `cweval`       | CWEval-style directories (`*_task.<ext>` + `*_test.py`)          |
| `humaneval`    | HumanEval (path, or the word `humaneval` for the packaged copy)  |
| `sallm`        | SALLM (`dataset.jsonl` + `<technique>/<source>/test_<id>.py`)    |
| `tasks`        | treeplay's normalised tasks.jsonl                               |
"""

from treeplay.tasks.load import FORMATS, Loader, detect_format, filter_tasks, load_many, load_tasks
from treeplay.tasks.loaders import TaskFormatError
from treeplay.tasks.records import AnnotatedNode, Task, align_prefix_to_line, normalise_cwe

__all__ = [
    "FORMATS",
    "AnnotatedNode",
    "Loader",
    "Task",
    "TaskFormatError",
    "align_prefix_to_line",
    "detect_format",
    "filter_tasks",
    "load_many",
    "load_tasks",
    "normalise_cwe",
]
