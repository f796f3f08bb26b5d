"""The language catalog: one declarative entry per language, which everything else reads.

Validation, the API's choices and /api/v1/languages, the OpenAPI enum, the browser page's menu and
editor modes, the CLI's file extensions, the images to build and the runner's commands all come from
CATALOG and IMAGES. Adding a language is one Language here (and its image's packages in IMAGES, if it needs
new ones), plus its programs in tests/languages.py; the README walks through it.

Commands are fixed shell text run by /bin/sh in the sandbox; nothing a user sends is ever part of
them. A program's files are in /code (read-only): the entry point under `source` (for Java, under
the name of the public class it declares: Language.entry), its stdin in /code/stdin, and its
arguments reach the run command as "$@", never through a shell's parser. A
compile stage reads /code and writes what the run needs into /tmp/out (its working directory); the
run stage then finds those files in /code instead of the sources.

This module imports nothing heavy: web processes read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath


@dataclass(frozen=True)
class Image:
    """A sandbox image: Debian bookworm's minimal base, tini, and these packages."""

    packages: tuple[str, ...]
    # Shell commands run as root inside the new root filesystem, after the packages are installed.
    setup: tuple[str, ...] = ()


@dataclass(frozen=True)
class StageLimits:
    # None: the platform's setting (SANDBOX_TIMEOUT_SECONDS, SANDBOX_MEMORY_MB, SANDBOX_PIDS_LIMIT,
    # SANDBOX_TMPFS_MB, SANDBOX_CPUS, SANDBOX_OUTPUT_LIMIT_BYTES).
    timeout_seconds: float | None = None
    memory_mb: int | None = None
    pids: int | None = None
    tmpfs_mb: int | None = None
    cpus: float | None = None
    output_limit_bytes: int | None = None


@dataclass(frozen=True)
class Compile:
    command: str
    # The compile stage's limits are the catalog's alone: a request changes only the run's.
    limits: StageLimits


@dataclass(frozen=True)
class Language:
    name: str
    label: str
    image: str
    source: str
    run: str
    version: str
    extensions: tuple[str, ...]
    # The browser page's editor mode: a MIME type CodeMirror 5 knows (its mode/meta.js lists them).
    editor_mode: str
    # The run's default limits; a request may ask for less, or for more up to the maxima below
    # (None: the platform's SANDBOX_TIMEOUT_SECONDS and SANDBOX_MEMORY_MB). A tenant's maxima cap both.
    limits: StageLimits = StageLimits()
    max_timeout_seconds: float | None = None
    max_memory_mb: int | None = None
    compile: Compile | None = None
    aliases: tuple[str, ...] = ()
    # Fixed variables added to the sandbox's environment for both stages.
    environment: dict[str, str] = field(default_factory=dict)
    # For a language whose compiler ties a file's name to what the file declares (Java: a public
    # class X must be in X.java), a pattern whose first group, found in the entry point's source, is
    # its file's name without the extension. Both stages then get that name as $ENTRY (a plain
    # identifier, quoted in the command: never parsed by a shell); no match: `source`'s.
    entry_pattern: str = ""

    def entry(self, code: str) -> str:
        """The file name the entry point `code` is given in /code."""
        match = re.search(self.entry_pattern, code, re.MULTILINE | re.ASCII) if self.entry_pattern else None
        return match[1] + PurePosixPath(self.source).suffix if match else self.source

    def environment_for(self, code: str) -> dict[str, str]:
        """The variables both stages of the program whose entry point is `code` get, besides ENVIRONMENT."""
        if not self.entry_pattern:
            return self.environment
        return {**self.environment, "ENTRY": PurePosixPath(self.entry(code)).stem}


# A compile stage writes its output here, relative to its working directory /tmp.
OUT_DIR = "out"

# Typed programs need `process` and `require` without @types/node, which Debian does not package.
NODE_TYPES = "/usr/local/lib/rce/node.d.ts"
NODE_TYPES_TEXT = (
    "declare var console: any; declare var process: any; declare function require(name: string): any; "
    "declare var module: any; declare var Buffer: any;"
)

IMAGES: dict[str, Image] = {
    "python": Image(packages=("python3",)),
    "gcc": Image(packages=("gcc", "g++", "libc6-dev")),
    "java": Image(packages=("openjdk-17-jdk-headless",)),
    "node": Image(
        packages=("nodejs", "node-typescript"),
        setup=(f"mkdir -p /usr/local/lib/rce && printf '%s\\n' '{NODE_TYPES_TEXT}' > {NODE_TYPES}",),
    ),
    "go": Image(packages=("golang-go",)),
    "rust": Image(packages=("rustc",)),
    "scripts": Image(packages=("ruby", "php-cli", "lua5.4")),
}

# Interpreters and compiled programs run within the platform's limits; virtual machines need more
# memory, and compilers more of everything.
COMPILER = StageLimits(timeout_seconds=20.0, memory_mb=512, pids=128, tmpfs_mb=256, cpus=1.0, output_limit_bytes=32 << 20)

CATALOG: dict[str, Language] = {
    language.name: language
    for language in (
        Language(
            name="python",
            label="Python",
            image="python",
            source="main.py",
            run="python3 -u /code/main.py",
            version="python3 -c 'import platform; print(platform.python_version())'",
            extensions=(".py",),
            editor_mode="text/x-python",
            aliases=("python3", "py"),
        ),
        Language(
            name="bash",
            label="Bash",
            image="python",
            source="main.sh",
            run="bash /code/main.sh",
            version="bash -c 'echo ${BASH_VERSINFO[0]}.${BASH_VERSINFO[1]}.${BASH_VERSINFO[2]}'",
            extensions=(".sh", ".bash"),
            editor_mode="text/x-sh",
            aliases=("sh",),
        ),
        Language(
            name="c",
            label="C (GCC)",
            image="gcc",
            source="main.c",
            compile=Compile(f"gcc -O2 -std=gnu17 -o {OUT_DIR}/main /code/*.c -lm", COMPILER),
            run="/code/main",
            version="gcc -dumpfullversion",
            extensions=(".c",),
            editor_mode="text/x-csrc",
            aliases=("gcc",),
        ),
        Language(
            name="cpp",
            label="C++ (GCC)",
            image="gcc",
            source="main.cpp",
            compile=Compile(f"g++ -O2 -std=gnu++17 -o {OUT_DIR}/main /code/*.cpp", COMPILER),
            run="/code/main",
            version="g++ -dumpfullversion",
            extensions=(".cpp", ".cc", ".cxx"),
            editor_mode="text/x-c++src",
            aliases=("c++", "g++"),
        ),
        Language(
            name="java",
            label="Java (OpenJDK)",
            image="java",
            source="Main.java",
            compile=Compile(
                f"javac -J-XX:+UseSerialGC -J-XX:TieredStopAtLevel=1 -J-Xshare:auto -encoding UTF-8 -d {OUT_DIR} "
                "$(find /code -name '*.java')",
                COMPILER,
            ),
            # The class run is the public top-level one the entry point declares, at the start of a
            # line (an indented one is nested); without one, Main. javac wants it in a file of its name.
            entry_pattern=(
                r"^public\s+(?:(?:final|abstract|sealed|non-sealed|strictfp)\s+)*"
                r"(?:class|interface|enum|record)\s+([A-Za-z_][A-Za-z0-9_]*)"
            ),
            # The heap may take the whole memory limit: a program that outgrows it is OOM-killed, as in
            # every other language, rather than failing with the JVM's own OutOfMemoryError.
            run='java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -XX:MaxRAMPercentage=100 -Xss1m -cp /code "$ENTRY"',
            version="java -XX:-UsePerfData -version 2>&1 | sed -n 's/.*version \"\\([^\"]*\\)\".*/\\1/p'",
            extensions=(".java",),
            editor_mode="text/x-java",
            limits=StageLimits(memory_mb=256, pids=128),
            max_memory_mb=1024,
        ),
        Language(
            name="javascript",
            label="JavaScript (Node.js)",
            image="node",
            source="main.js",
            run="node /code/main.js",
            version="node -e 'console.log(process.versions.node)'",
            extensions=(".js", ".mjs", ".cjs"),
            editor_mode="text/javascript",
            aliases=("js", "node", "nodejs"),
            limits=StageLimits(memory_mb=128),
            max_memory_mb=1024,
        ),
        Language(
            name="typescript",
            label="TypeScript",
            image="node",
            source="main.ts",
            compile=Compile(
                f"tsc --target es2020 --module commonjs --lib es2020 --skipLibCheck --rootDir /code --outDir {OUT_DIR} "
                f"{NODE_TYPES} $(find /code -name '*.ts')",
                COMPILER,
            ),
            run="node /code/main.js",
            version="tsc --version | sed 's/^Version //'",
            extensions=(".ts",),
            editor_mode="application/typescript",
            aliases=("ts",),
            limits=StageLimits(memory_mb=128),
            max_memory_mb=1024,
        ),
        Language(
            name="go",
            label="Go",
            image="go",
            source="main.go",
            compile=Compile(f"go build -o {OUT_DIR}/main /code/*.go", COMPILER),
            run="/code/main",
            version="go env GOVERSION | sed 's/^go//'",
            extensions=(".go",),
            editor_mode="text/x-go",
            aliases=("golang",),
            environment={"GOCACHE": "/tmp/go-cache", "GOPATH": "/tmp/go", "GO111MODULE": "off", "CGO_ENABLED": "0"},
        ),
        Language(
            name="rust",
            label="Rust",
            image="rust",
            source="main.rs",
            compile=Compile(f"rustc --edition 2021 -C opt-level=1 -o {OUT_DIR}/main /code/main.rs", COMPILER),
            run="/code/main",
            version="rustc --version | cut -d' ' -f2",
            extensions=(".rs",),
            editor_mode="text/x-rustsrc",
        ),
        Language(
            name="ruby",
            label="Ruby",
            image="scripts",
            source="main.rb",
            run="ruby /code/main.rb",
            version="ruby -e 'puts RUBY_VERSION'",
            extensions=(".rb",),
            editor_mode="text/x-ruby",
            aliases=("rb",),
        ),
        Language(
            name="php",
            label="PHP",
            image="scripts",
            source="main.php",
            run="php /code/main.php",
            version="php -r 'echo PHP_VERSION, PHP_EOL;'",
            extensions=(".php",),
            editor_mode="application/x-httpd-php",
        ),
        Language(
            name="lua",
            label="Lua",
            image="scripts",
            source="main.lua",
            run="lua5.4 /code/main.lua",
            version="lua5.4 -v | cut -d' ' -f2",
            extensions=(".lua",),
            editor_mode="text/x-lua",
        ),
    )
}

NAMES: tuple[str, ...] = tuple(CATALOG)
# Every accepted spelling (name or alias, in lower case) to the language's name. Read it through
# name_of(): the API, the fast lane and the CLI accept the same spellings, in any ASCII case.
SPELLINGS: dict[str, str] = {
    spelling: language.name for language in CATALOG.values() for spelling in (language.name, *language.aliases)
}


# A program's files besides its entry point: how many, and the names they may have.
MAX_FILES = 20
MAX_ARGS = 64
MAX_ARG_BYTES = 4096
RESERVED_NAMES = ("stdin",)
# The browser page checks names by these rules too (executions/static/executions/page.js).
MAX_NAME_PARTS = 4
MAX_NAME_PART = 100


def safe_name(name: str) -> bool:
    """A relative path of plain components: no absolute path, no `..`, nothing hidden or empty."""
    parts = name.split("/")
    return 0 < len(parts) <= MAX_NAME_PARTS and all(
        part and part not in (".", "..") and not part.startswith(".") and len(part) <= MAX_NAME_PART and part.isprintable()
        and "\\" not in part
        for part in parts
    )


def name_problem(name: str) -> str | None:
    """Why a program's file may not have this name, or None: every name, the entry point's too."""
    if not safe_name(name) or name in RESERVED_NAMES:
        return f"{name!r} is not a safe relative file name (no absolute path, no `..`, no hidden part)."
    return None


def name_of(spelling: str) -> str | None:
    """The name of the language a name or alias stands for ("JS" -> "javascript"), or None."""
    return SPELLINGS.get(spelling.lower() if spelling.isascii() else spelling)


def get(name: str) -> Language | None:
    """The language a name or alias stands for, or None."""
    canonical = name_of(name)
    return CATALOG[canonical] if canonical else None


def by_extension(filename: str) -> Language | None:
    lowered = filename.lower()
    for language in CATALOG.values():
        if lowered.endswith(language.extensions):
            return language
    return None


CHOICES: list[tuple[str, str]] = [(language.name, language.label) for language in CATALOG.values()]


def choices() -> list[tuple[str, str]]:
    return CHOICES


def largest_default_memory_mb(platform_memory_mb: int) -> int:
    """The most memory one stage of any language gets by default (its run's, or its compile's): what a
    slot must hold. A request for more than its language's default, up to the maxima, overcommits."""
    stages = [language.limits for language in CATALOG.values()]
    stages += [language.compile.limits for language in CATALOG.values() if language.compile]
    return max(stage.memory_mb or platform_memory_mb for stage in stages)


def of_image(image: str) -> list[Language]:
    return [language for language in CATALOG.values() if language.image == image]
