"""Hostile sources aimed at the compile stage: each ends `compilation_error` within the compile
limits, in a sandbox like a run's (no network, fixed environment, read-only sources), and what the
compiler writes is taken only if it is plain files with safe names."""

from __future__ import annotations

import io
import tarfile

import pytest
from django.conf import settings

from executions.sandbox import languages, runner
from executions.sandbox.runner import SandboxError

pytestmark = pytest.mark.no_database

# Each stopped by a compile limit, as measured: the macro bomb and /dev/zero by the memory limit,
# the huge binaries by the file size limit (the size of /tmp) or the linker's own refusal.
MACRO_BOMB = "".join(f"#define A{i + 1} A{i} A{i} A{i} A{i}\n" for i in range(20)) + "#define A0 x\nint main(void) { A20; }\n"

ATTACKS = {
    # Exponential macro expansion: 4^20 tokens.
    "c-macro-bomb": ("c", MACRO_BOMB),
    # A 256 MiB object file: more than the compile stage's /tmp and output may hold.
    "c-huge-binary": ("c", "char big[1 << 28] = {1};\nint main(void) { return big[5]; }\n"),
    "cpp-include-dev-zero": ("cpp", '#include "/dev/zero"\n'),
    "go-huge-binary": ("go", "package main\nvar big = [1 << 29]byte{1}\nfunc main() { println(big[9]) }\n"),
}


# Sources that end at once, however hostile: the compiler's stdin is /dev/null, and its own output
# goes to a file, so including either reads what is there and goes on (a link error: no main).
QUICK_ATTACKS = {
    "c-include-own-stdin": ("c", '#include "/proc/self/fd/0"\n'),
    "c-include-own-stdout": ("c", '#include "/proc/self/fd/1"\n'),
    "cpp-include-own-stderr": ("cpp", '#include "/proc/self/fd/2"\n'),
}
# Far below the compile limit (20 s), far above a loaded machine's compile of an empty file.
QUICK_SECONDS = 8


RUNTIMES = ["runc"] + (["runsc"] if "runsc" in runner.docker_api().info().get("Runtimes", {}) else [])


def compiled(runtime: str, language: str, source: str) -> runner.RunResult:
    result = runner.run(language, source, limits=runner.Limits.for_stage(languages.CATALOG[language].limits, runtime))
    assert result.status == "compilation_error", (result.status, result.compile_output[-500:])
    assert (result.stdout, result.stderr) == (b"", b"")
    return result


@pytest.mark.parametrize("runtime, name", [(runtime, name) for runtime in RUNTIMES for name in ATTACKS])
def test_a_hostile_source_is_a_compilation_error_within_the_compile_limits(runtime, name):
    language, source = ATTACKS[name]
    result = compiled(runtime, language, source)
    limit_ms = languages.CATALOG[language].compile.limits.timeout_seconds * 1000
    assert result.compile_duration_ms <= limit_ms + (300 if runtime == "runc" else 600)


@pytest.mark.parametrize("runtime, name", [(runtime, name) for runtime in RUNTIMES for name in QUICK_ATTACKS])
def test_a_compiler_that_includes_its_own_streams_ends_at_once(runtime, name):
    result = compiled(runtime, *QUICK_ATTACKS[name])
    assert result.compile_duration_ms < QUICK_SECONDS * 1000, result.compile_output[-500:]
    assert b"[the compiler was stopped" not in result.compile_output


def test_the_compiler_gets_the_fixed_environment_and_nothing_of_the_workers(monkeypatch):
    monkeypatch.setenv("WORKER_SECRET", "do-not-leak")
    api = runner.docker_api()
    stage = runner.compile_stage_of(languages.CATALOG["go"])
    container_id = runner.create_container(api, stage, runner.Limits.for_stage(languages.CATALOG["go"].compile.limits), {})
    try:
        env = dict(line.split("=", 1) for line in api.inspect_container(container_id)["Config"]["Env"])
    finally:
        runner.remove_container(api, container_id)
    assert set(env) == set(runner.ENVIRONMENT) | set(languages.CATALOG["go"].environment)
    assert env["PATH"] == runner.ENVIRONMENT["PATH"] and "do-not-leak" not in env.values()


def test_a_compile_stage_has_every_restriction_of_a_run():
    api = runner.docker_api()
    language = languages.CATALOG["rust"]
    limits = runner.Limits.for_stage(language.compile.limits)
    code_dir = runner.write_code_dir(runner.Program({"main.rs": b"fn main() {}"}), "")
    container_id = runner.create_container(api, runner.compile_stage_of(language), limits, {}, code_dir)
    try:
        inspected = api.inspect_container(container_id)
        runner.verify_restrictions(inspected, limits, code_dir)
    finally:
        runner.remove_container(api, container_id)
        runner.discard_code_dir(code_dir)
    host = inspected["HostConfig"]
    assert (host["NetworkMode"], host["ReadonlyRootfs"], host["CapDrop"]) == ("none", True, ["ALL"])
    assert host["Memory"] == 512 * 1024 * 1024 and host["PidsLimit"] == limits.pids
    assert [(m["Destination"], m["RW"]) for m in inspected["Mounts"]] == [("/code", False)]


def archive(*members: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(data) if member.isreg() else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, size: int = 1, mode: int = 0o755, target: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mode, info.linkname = kind, size if kind == tarfile.REGTYPE else 0, mode, target
    return info


@pytest.mark.parametrize(
    "bad",
    [
        member("link", tarfile.SYMTYPE, target="/etc/passwd"),
        member("hard", tarfile.LNKTYPE, target="main"),
        member("../escape"),
        member("/abs"),
        member("dev", tarfile.CHRTYPE),
        member("fifo", tarfile.FIFOTYPE),
        member("stdin"),
    ],
    ids=lambda info: info.name,
)
def test_only_plain_files_with_safe_names_come_out_of_the_compile_stage(bad):
    with pytest.raises(SandboxError):
        runner.compiled_program(archive(member("main"), bad), settings.SANDBOX_OUTPUT_LIMIT_BYTES)


def test_what_the_compiler_made_keeps_its_executable_bit_and_nothing_else():
    program = runner.compiled_program(
        archive(member("./"), member("./main", mode=0o4755), member("./pkg/Helper.class", mode=0o644)), 1000
    )
    assert set(program.files) == {"main", "pkg/Helper.class"}
    assert program.executables == frozenset({"main"})
    with pytest.raises(SandboxError, match="too large"):
        runner.compiled_program(archive(member("a"), member("b")), 1)
