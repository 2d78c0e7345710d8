"""Conditional compilation blanked for the C# and C/C++ parse (one configuration: first branches taken)."""

import pytest

from iquest_core.data import syntax
from iquest_core.data.conditionals import blank_conditionals
from iquest_core.data.quality.ast_check import validate

SERILOG_STYLE = """namespace Serilog.Core.Sinks;

sealed class RestrictedSink : ILogEventSink, IDisposable
#if FEATURE_ASYNCDISPOSABLE
    , IAsyncDisposable
#endif
{
    public void Emit(LogEvent logEvent)
    {
        var sinks = _sinks.Where(s => s is IDisposable
#if FEATURE_ASYNCDISPOSABLE
                or IAsyncDisposable
#else
                or IFlushable
#endif
            ).ToArray();
    }
}
"""

CUDA_STYLE = """__host__ __device__ unsigned short convert(float x, int rounding) {
    unsigned short res = 0U;
#if (__CUDA_ARCH__ >= 890)
    if (rounding == 0)
    {
        res = hardware_convert(x);
    } else
#endif
    {
        res = software_convert(x, rounding);
    }
    if (sizeof(unsigned long) == sizeof(unsigned long long))
#if defined(_MSC_VER)
#pragma warning (pop)
#endif
    {
        res += 1;
    }
    return res;
}
"""


@pytest.mark.parametrize("text, language", [(SERILOG_STYLE, "c_sharp"), (CUDA_STYLE, "cpp")], ids=["c_sharp", "cuda"])
def test_directives_inside_constructs_parse_clean_in_one_configuration(text, language):
    assert not syntax.parse(text, language).clean  # the grammar cannot place #if inside a base list or an if
    parsed = syntax.parse(text, language, blank_macros=True)
    assert parsed.clean and parsed.data == text.encode()  # offsets kept: the original bytes
    check = validate(text)
    assert check.valid and check.language == language


def test_blanking_keeps_offsets_and_the_first_branch():
    blanked = blank_conditionals(SERILOG_STYLE.encode(), "c_sharp").decode()
    assert len(blanked) == len(SERILOG_STYLE)
    assert [i for i, c in enumerate(blanked) if c == "\n"] == [i for i, c in enumerate(SERILOG_STYLE) if c == "\n"]
    assert "or IAsyncDisposable" in blanked and "IFlushable" not in blanked and "#" not in blanked
    cpp = blank_conditionals(b"#ifndef A_H\n#define A_H \\\n  1\n#if X && \\\n  Y\nint a;\n#endif\n#endif\n", "cpp")
    assert cpp == (b" " * 11 + b"\n#define A_H \\\n  1\n" + b" " * 10 + b"\n   \nint a;\n"
                   + b" " * 6 + b"\n" + b" " * 6 + b"\n")  # #define stays
    assert blank_conditionals(b"#if X\nx\n#endif\n", "python") == b"#if X\nx\n#endif\n"


@pytest.mark.parametrize("text", ["#if A\nint a;\n", "int a;\n#endif\n", "#if A\n#else\n#else\n#endif\n#endif\n"],
                         ids=["if-left-open", "endif-without-if", "endif-too-many"])
def test_conditionals_that_do_not_balance_have_no_configuration(text):
    assert blank_conditionals(text.encode(), "cpp") is None


def test_damage_in_the_parsed_configuration_is_still_seen():
    cut = SERILOG_STYLE[:SERILOG_STYLE.index("or IFlushable") + 5]  # truncated inside the #else branch
    assert blank_conditionals(cut.encode(), "c_sharp") is None
    assert not validate(cut).valid
    prose = SERILOG_STYLE.replace("    public void", "Copy this into your project.\n    public void")
    assert not validate(prose).valid
    escaped = CUDA_STYLE.replace("x, rounding", "x,\nthis line is prose rounding")
    assert not validate(escaped).valid


def test_the_last_configuration_takes_each_else_branch_or_none():
    blanked = blank_conditionals(SERILOG_STYLE.encode(), "c_sharp", taken="last").decode()
    assert "IAsyncDisposable" not in blanked and "or IFlushable" in blanked
    assert syntax.parse(SERILOG_STYLE, "c_sharp", blank_macros=True, taken="last").clean
    with pytest.raises(ValueError, match="taken"):
        blank_conditionals(b"", "cpp", taken="middle")


def test_prose_in_a_branch_one_configuration_leaves_out_is_still_damage():
    prose = SERILOG_STYLE.replace("    or IFlushable", "Thanks, it worked for me.\n    or IFlushable")
    assert syntax.parse(prose, "c_sharp", blank_macros=True).clean  # the first branches do not see it
    check = validate(prose)
    assert not check.valid and check.error_share > 0
