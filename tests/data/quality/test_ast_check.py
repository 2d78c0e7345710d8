"""Code blocks found in text, language identified by parsing, damage named."""

import html

import pytest

from iquest_core.data import syntax
from iquest_core.data.quality.ast_check import code_blocks, validate
from tests.data.conftest import corpus

PAGE = """Intro to the loop.

```python
def total(values):
    return sum(v for v in values if v > 0)
```

Some prose between blocks, which is not code at all.

    for (int i = 0; i < n; i++) { sum += a[i]; }
    return sum;

<p>And in HTML:</p><pre><code>if (a &lt; b) { console.log(&quot;smaller&quot;); }</code></pre>
"""


def test_blocks_of_each_kind_with_their_code():
    blocks = code_blocks(PAGE)
    assert [(b.kind, b.info) for b in blocks] == [("fenced", "python"), ("indented", ""), ("html", "")]
    assert blocks[0].code == "def total(values):\n    return sum(v for v in values if v > 0)\n"
    assert blocks[1].code == "for (int i = 0; i < n; i++) { sum += a[i]; }\nreturn sum;\n"
    assert blocks[2].code == 'if (a < b) { console.log("smaller"); }'
    assert all(PAGE[b.start:b.end].count(b.code.split("\n")[0].strip()[:10]) for b in blocks[:2])


def test_short_blocks_and_prose_are_not_blocks():
    assert code_blocks("Plain prose.\n\nMore prose here.\n") == []
    assert code_blocks("```\nx\n```\n") == []


@pytest.mark.parametrize("path, language, text", corpus(), ids=[p.name for p, _, _ in corpus()])
def test_real_files_are_identified_by_parsing(path, language, text):
    check = validate(text)
    if path.name == "extension.cpp":  # the shipped file tree-sitter cannot parse cleanly
        assert not check.valid and check.error_share > 0
        return
    assert check.valid and check.error_share == 0 and check.definitions > 0
    family = {"javascript": {"javascript", "typescript"}, "typescript": {"typescript"}}.get(language, {language})
    assert check.language in family


def test_damaged_code_is_invalid():
    text = dict((p.name, t) for p, _, t in corpus())["bisect.py"]
    assert validate(text).valid
    truncated = validate(text[: len(text) // 2])  # cut inside insort_left's parameter list
    assert not truncated.valid and truncated.error_share > 0 and truncated.damage is None
    numbered = "\n".join(f"{i:>3}: {line}" for i, line in enumerate(text.split("\n"), 1))
    assert validate(numbered).damage == "line_numbered"
    escaped = validate(html.escape(text))
    assert escaped.damage == "html_escaped" and not escaped.valid
    mixed = text.replace("\ndef ", "\nThis is where the helper functions start, as described above.\ndef ", 1)
    assert validate(mixed).error_share > 0 and not validate(mixed).valid
    assert validate('s = "a &lt; b"\n', "python").valid  # an entity inside a string literal is code


CSHARP_NO_FINAL_NEWLINE = """namespace Demo.Serialization
{
    public static class JsonHelpers
    {
        public static bool IsNullOrEmpty(string value)
        {
            return value == null || value.Length == 0;
        }
    }
}"""


def test_a_file_without_final_newline_is_valid_and_a_cut_mid_block_is_not():
    assert validate(CSHARP_NO_FINAL_NEWLINE).valid
    cut = validate(CSHARP_NO_FINAL_NEWLINE[: CSHARP_NO_FINAL_NEWLINE.index("|| value") + 5])
    assert cut.language == "c_sharp" and not cut.valid and cut.error_share > 0


MACRO_HEAVY_CPP = """#include <cstddef>
#include <string>

#define STORAGE_API __attribute__((visibility("default")))
#define NODISCARD [[nodiscard]]

namespace storage {

class STORAGE_API Table {
 public:
  explicit Table(std::size_t capacity);
  STORAGE_DEPRECATED("use lookup") bool find(const std::string& key) const;
  std::size_t size() const STORAGE_NOEXCEPT { return size_; }

 private:
  std::size_t size_ = 0;
  GUARDED_BY(mutex_) std::string last_key_;
};

STORAGE_API Table::Table(std::size_t capacity) : size_(capacity) {
  if (capacity == 0) {
    size_ = 1;
  }
}

}  // namespace storage
"""


def test_macro_heavy_cpp_is_valid_and_its_truncated_copy_is_not():
    """Annotation macros the parser cannot expand are blanked for the parse; a cut still shows."""
    check = validate(MACRO_HEAVY_CPP)
    assert check.valid and check.language == "cpp" and check.error_share == 0.0
    cut = validate(MACRO_HEAVY_CPP[: MACRO_HEAVY_CPP.index("size_ = 1;") + 10])
    assert cut.language == "cpp" and not cut.valid and cut.error_share > 0
    prose = MACRO_HEAVY_CPP.replace(" private:", " Note: STORAGE_API tables are not thread safe.\n private:")
    assert not validate(prose).valid

JAVADOC = """/**
 * Replaces a {@link java.util.function.Consumer Consumer&lt;O&gt;} with a
 * {@code FailableConsumer&lt;O, ? extends Throwable&gt;} that may throw.
 */
public final class Failables {
    public static <O> void accept(FailableConsumer<O, ? extends Throwable> consumer, O object) throws Throwable {
        consumer.accept(object);
    }
}
"""
JS_ESCAPER = """function escapeHtml(text) {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

function unescapeLessThan(text) {
  return text.replace(/&lt;/g, '<');
}
"""
JSX_TEXT = """export function Credits({ year }) {
  return <p className="credits">Tom &amp; Jerry, {year}</p>;
}
"""


@pytest.mark.parametrize("code, language", [(JAVADOC, "java"), (JS_ESCAPER, "typescript"), (JSX_TEXT, "javascript")],
                         ids=["javadoc-comment", "regex-literal", "jsx-text"])
def test_entities_in_comments_regexes_and_jsx_text_are_code(code, language):
    check = validate(code)
    assert check.valid and check.damage is None and check.language == language
    assert validate(html.escape(code)).damage == "html_escaped"  # the same code escaped is damage


def test_bad_arguments():
    with pytest.raises(ValueError, match="language"):
        validate("x = 1\n", "cobol")
    with pytest.raises(ValueError, match="max_error_share"):
        validate("x = 1\n", max_error_share=2)


def test_a_grammar_over_its_parse_budget_is_no_candidate(monkeypatch):
    code = dict((p.name, t) for p, _, t in corpus())["bisect.py"]
    assert validate(code).language == "python"
    monkeypatch.setattr(syntax, "CALLS_PER_BYTE", 0.0)
    monkeypatch.setattr(syntax, "MIN_CALLS", 0)
    check = validate(code)
    assert (check.language, check.error_share, check.valid) == (None, 1.0, False)
