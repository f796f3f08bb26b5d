from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from executions import judging
from executions.api.schema import CODE_SCHEMA, NO_NUL_SCHEMA
from executions.models import Execution
from executions.sandbox import languages


class StrictCharField(serializers.CharField):
    """A string, and only a string: DRF's CharField would turn 123 or true into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        if "\x00" in data:
            raise serializers.ValidationError("must not contain NUL characters.", code="nul_character")
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            raise serializers.ValidationError(
                "must be valid Unicode text (it has a lone surrogate).", code="invalid_encoding"
            ) from None
        return super().to_internal_value(data)


# The same fields, with what they accept spelled out in the schema for clients and fuzzers.
@extend_schema_field(CODE_SCHEMA)
class CodeField(StrictCharField):
    def run_validation(self, data=serializers.empty):
        # Blank is refused here, with our own code, rather than by DRF's `blank` check.
        if isinstance(data, str) and not data.strip():
            validate_code(data)
        return super().run_validation(data)


@extend_schema_field(NO_NUL_SCHEMA)
class StdinField(StrictCharField):
    def run_validation(self, data=serializers.empty):
        # Empty is fine, without allow_blank, whose schema would be a oneOf that "" matches twice.
        if data == "":
            return ""
        return super().run_validation(data)


@extend_schema_field({"type": "string", "format": "uri", "maxLength": 2000, "pattern": "^https?://[^\\x00-\\x20]+$"})
class CallbackUrlField(StrictCharField):
    """A URL, checked (and its host resolved) by admission, not here."""

    def __init__(self, **kwargs):
        super().__init__(max_length=2000, trim_whitespace=False, **kwargs)


class TimeoutField(serializers.FloatField):
    """timeout_seconds; its bounds are checked by executions.limits.check_limits, not here."""


class MemoryField(serializers.IntegerField):
    """memory_mb; its bounds are checked by executions.limits.check_limits, not here."""


class JsonNumberMixin:
    """A JSON number only: DRF would turn "3" or true into a number."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonTimeoutField(JsonNumberMixin, TimeoutField):
    pass


class JsonMemoryField(JsonNumberMixin, MemoryField):
    pass


def validate_code(code: str) -> str:
    if not code.strip():
        raise serializers.ValidationError("must not be empty.", code="empty_code")
    return code


class LanguageField(serializers.ChoiceField):
    """A language of the catalog, by its name or one of its aliases; the name is kept."""

    def __init__(self, **kwargs):
        super().__init__(choices=languages.choices(), **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = languages.name_of(data) or data
        return super().to_internal_value(data)


class FileSerializer(serializers.Serializer):
    name = StrictCharField(max_length=400, help_text="A relative path: no `..`, no absolute path, no hidden part.")
    content = StdinField(trim_whitespace=False, required=False, default="", help_text="The file's text, or base64.")
    encoding = serializers.ChoiceField(choices=["utf-8", "base64"], default="utf-8")

    def to_internal_value(self, data):
        reject_unknown_fields(self, data)
        return super().to_internal_value(data)


class JsonFloatField(JsonNumberMixin, serializers.FloatField):
    pass


class TestCaseSerializer(serializers.Serializer):
    """One test of a judged submission; its sizes are checked by admission."""

    name = StdinField(trim_whitespace=False, required=False, default="", max_length=judging.MAX_TEST_NAME)
    stdin = StdinField(trim_whitespace=False, required=False, default="")
    args = serializers.ListField(child=StdinField(trim_whitespace=False), required=False, default=list, max_length=languages.MAX_ARGS)
    expected_output = StdinField(
        trim_whitespace=False, required=False, default="", help_text="With `regex`, an RE2 pattern the whole output must match."
    )

    def to_internal_value(self, data):
        reject_unknown_fields(self, data)
        return super().to_internal_value(data)


class ExecutionCreateSerializer(serializers.Serializer):
    language = LanguageField(default="python")
    code = CodeField(trim_whitespace=False, required=False, help_text="The entry point; or the first of `files`.")
    stdin = StdinField(trim_whitespace=False, required=False, default="")
    files = FileSerializer(
        many=True,
        required=False,
        max_length=languages.MAX_FILES + 1,
        help_text="The program's files; the entry point is `code`, else the file named like the language's "
        "source (main.py, Main.java...), else the first.",
    )
    args = serializers.ListField(
        child=StdinField(trim_whitespace=False),
        required=False,
        max_length=languages.MAX_ARGS,
        help_text="Passed to the program as its arguments, never through a shell.",
    )
    timeout_seconds = JsonTimeoutField(required=False, help_text="The wall-clock limit for this run.")
    memory_mb = JsonMemoryField(required=False, help_text="The memory limit (MiB) for this run.")
    callback_url = CallbackUrlField(
        required=False,
        help_text=(
            "POST the execution here, signed, when it ends (README: Webhooks). Default: the tenant's, if any. "
            "Public http(s) addresses only."
        ),
    )
    tests = TestCaseSerializer(
        many=True,
        required=False,
        max_length=judging.MAX_TESTS,
        help_text="Judge the program: compiled once, each test run in its own sandbox and its output compared "
        "with expected_output. timeout_seconds is then each test's CPU time limit.",
    )
    comparison = serializers.ChoiceField(
        choices=judging.COMPARISONS, required=False, help_text="How outputs are compared (default trailing_whitespace)."
    )
    abs_tolerance = JsonFloatField(required=False, help_text="`float`: the absolute tolerance (default 1e-6).")
    rel_tolerance = JsonFloatField(required=False, help_text="`float`: the relative tolerance (default 1e-6).")
    stop_on_first_failure = serializers.BooleanField(required=False, default=False)

    def to_internal_value(self, data):
        reject_unknown_fields(self, data)
        return super().to_internal_value(data)

    def validate_code(self, code: str) -> str:
        return validate_code(code)

    def validate(self, data: dict) -> dict:
        """The entry point becomes `code`; the other files stay in `files`."""
        files = list(data.get("files") or [])
        # Here, before the entry point's name is let go: admission sees only the other files' names.
        for file in files:
            problem = languages.name_problem(file["name"])
            if problem:
                raise serializers.ValidationError({"files": [problem]}, code="invalid_file_name")
        if "code" not in data:
            if not files:
                raise serializers.ValidationError({"code": ["This field is required."]}, code="required")
            source = languages.CATALOG[data["language"]].source
            entry = next((file for file in files if file["name"] == source), files[0])
            if entry["encoding"] != "utf-8":
                raise serializers.ValidationError({"files": ["the entry point must be text."]}, code="invalid_encoding")
            files.remove(entry)
            data["code"] = validate_code(entry["content"])
        data["files"] = files
        data["args"] = list(data.get("args") or [])
        return data


def reject_unknown_fields(serializer: serializers.Serializer, data) -> None:
    if isinstance(data, dict):
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise serializers.ValidationError({name: ["is not a known field."] for name in unknown}, code="unknown_field")


MAX_BATCH = 20


class ExecutionBatchSerializer(serializers.Serializer):
    executions = ExecutionCreateSerializer(many=True, allow_empty=False, max_length=MAX_BATCH)
    callback_url = CallbackUrlField(
        required=False,
        help_text=(
            "POST the whole batch here, signed, once all its executions have ended. Its items then get no "
            "default callback of the tenant's (each may still name its own)."
        ),
    )

    def to_internal_value(self, data):
        reject_unknown_fields(self, data)
        return super().to_internal_value(data)


class BatchAcceptedSerializer(serializers.Serializer):
    task_ids = serializers.ListField(child=serializers.UUIDField(), help_text="In the order of the request.")
    batch_id = serializers.UUIDField(required=False, help_text="With a callback_url: the id its webhook carries.")


class DeliverySerializer(serializers.Serializer):
    """A webhook delivery, as Delivery.to_dict() writes it."""

    delivery_id = serializers.UUIDField(help_text="Sent as the webhook-id header.")
    task_id = serializers.UUIDField(allow_null=True)
    batch_id = serializers.UUIDField(allow_null=True)
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)


MAX_WAIT_SECONDS = 30


class WaitField(serializers.FloatField):
    pass


class WaitQuerySerializer(serializers.Serializer):
    wait = WaitField(
        required=False,
        help_text=(
            f"Seconds (at most {MAX_WAIT_SECONDS}) to wait for the execution to finish: 200 with it if it "
            "does, else the usual 202. A busy server may answer 202 without waiting."
        ),
    )

    def validate_wait(self, wait: float) -> float:
        if not 0 < wait <= MAX_WAIT_SECONDS:
            raise serializers.ValidationError(
                f"must be more than 0 and at most {MAX_WAIT_SECONDS} seconds.", code="invalid_wait"
            )
        return wait


class RawQuerySerializer(WaitQuerySerializer):
    """The query parameters of the raw-body endpoint (the language is checked by the view)."""

    timeout_seconds = TimeoutField(required=False, help_text="Lower the wall-clock limit for this run.")
    memory_mb = MemoryField(required=False, help_text="Lower the memory limit (MiB) for this run.")


class TestResultSerializer(serializers.Serializer):
    """A judged test's result, as executions.sandbox.judge writes it (a skipped one has name and verdict only)."""

    name = serializers.CharField()
    verdict = serializers.ChoiceField(choices=judging.TEST_VERDICTS)
    exit_code = serializers.IntegerField(allow_null=True, required=False)
    stdout = serializers.CharField(required=False)
    stderr = serializers.CharField(required=False)
    stdout_truncated = serializers.BooleanField(required=False)
    stderr_truncated = serializers.BooleanField(required=False)
    cpu_time_ms = serializers.IntegerField(required=False, help_text="From the sandbox's cgroup, on the host.")
    wall_time_ms = serializers.IntegerField(required=False)
    memory_kb = serializers.IntegerField(required=False, help_text="Peak, from the sandbox's cgroup.")
    message = serializers.CharField(
        required=False, help_text="Why a verdict needs explaining: a comparison that ran out of its time budget is wrong_answer."
    )


class ExecutionSerializer(serializers.ModelSerializer):
    task_id = serializers.UUIDField(source="id", read_only=True)
    error = serializers.SerializerMethodField()

    class Meta:
        model = Execution
        fields = [
            "task_id",
            "status",
            "language",
            "stdout",
            "stderr",
            "exit_code",
            "stdout_truncated",
            "stderr_truncated",
            "duration_ms",
            "compile_output",
            "compile_duration_ms",
            "timeout_seconds",
            "memory_mb",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "verdict",
            "tests_passed",
            "tests_failed",
            "test_results",
        ]
        read_only_fields = fields

    verdict = serializers.ChoiceField(choices=judging.VERDICTS, allow_null=True, read_only=True, help_text="Judged only.")
    test_results = TestResultSerializer(many=True, read_only=True)

    def get_error(self, execution: Execution) -> str | None:
        return execution.error or None

    def to_representation(self, execution: Execution) -> dict:
        # The fields above describe it for the schema; the model writes it, the same everywhere.
        return execution.to_dict()


class StageLimitsSerializer(serializers.Serializer):
    timeout_seconds = serializers.FloatField()
    memory_mb = serializers.IntegerField()


class LanguageRuntimeSerializer(serializers.Serializer):
    name = serializers.ChoiceField(choices=languages.choices())
    label = serializers.CharField()
    aliases = serializers.ListField(child=serializers.CharField())
    extensions = serializers.ListField(child=serializers.CharField())
    source = serializers.CharField(help_text="The entry point's file name.")
    compiled = serializers.BooleanField()
    version = serializers.CharField(
        allow_null=True, help_text="The interpreter's version in the sandbox image; null until a worker has read it."
    )
    limits = StageLimitsSerializer(help_text="A run's limits when the request names none.")
    max_limits = StageLimitsSerializer(help_text="The most a request may ask for (a tenant's maxima may be lower).")
    compile_limits = StageLimitsSerializer(allow_null=True, help_text="The compile stage's, for compiled languages.")


class DefaultLimitsSerializer(serializers.Serializer):
    timeout_seconds = serializers.FloatField(help_text="Wall-clock limit: the default, and the most a request may ask.")
    memory_mb = serializers.IntegerField(help_text="Memory limit in MiB: the default, and the most a request may ask.")
    cpus = serializers.FloatField()
    output_limit_bytes = serializers.IntegerField(help_text="Cap on stdout and on stderr, each.")
    max_code_bytes = serializers.IntegerField()
    max_stdin_bytes = serializers.IntegerField()


class LanguagesSerializer(serializers.Serializer):
    languages = LanguageRuntimeSerializer(many=True)
    limits = DefaultLimitsSerializer()
