# -*- coding: utf-8 -*-
"""字符串工具 — string helpers with CJK comments, emoji 😀 and a BOM at the top of the file."""

import unicodedata


def 宽度(text: str) -> int:
    """East Asian wide characters count as two columns (显示宽度)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def pad(text: str, width: int, fill: str = " ") -> str:
    # 右侧补齐到指定宽度 🧱
    missing = max(0, width - 宽度(text))
    return text + fill * missing


class Banner:
    emoji = "🚀✨"

    def __init__(self, title: str) -> None:
        self.title = title

    def render(self) -> str:
        line = "═" * (宽度(self.title) + 4)
        return f"╔{line}╗\n║  {self.title}  ║\n╚{line}╝ {self.emoji}"


if __name__ == "__main__":
    print(Banner("你好，世界 👋").render())
    print(pad("<|im_end|>", 12, "·") + "|")
