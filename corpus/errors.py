"""Every exception ipqa raises on purpose.

Messages meant for users are in Chinese (``user_message``); ``str(exc)`` keeps the
file name and reason so logs stay useful.
"""

from __future__ import annotations

from pathlib import Path


class IpqaError(Exception):
    """Base class of all ipqa errors."""

    @property
    def user_message(self) -> str:
        return str(self)


class UnsupportedDocument(IpqaError):
    """A file that cannot become a Document: wrong type, empty, corrupt, too large...

    ``reason`` is a short Chinese sentence a user can act on.
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.name = Path(path).name
        self.reason = reason
        super().__init__(f"{self.name}: {reason}")

    @property
    def user_message(self) -> str:
        return f"文件「{self.name}」无法导入：{self.reason}"


class UnknownCollection(IpqaError):
    """A bundled collection name that does not exist."""

    def __init__(self, name: str, valid: list[str]):
        self.collection = name
        self.valid = sorted(valid)
        super().__init__(f"unknown collection {name!r}; choose from {self.valid}")

    @property
    def user_message(self) -> str:
        return f"没有名为「{self.collection}」的文档集，可选：{'、'.join(self.valid)}"


class IndexNotBuilt(IpqaError):
    """The index directory holds no index yet."""

    def __init__(self, index_dir: str | Path):
        self.index_dir = str(index_dir)
        flag = "--store" if self.index_dir.startswith(("postgresql://", "postgres://")) else "--index-dir"
        self.command = f"ipqa index {flag} {self.index_dir}"
        super().__init__(f"no index in {self.index_dir}; build one with: {self.command}")

    @property
    def user_message(self) -> str:
        return f"还没有建立索引（{self.index_dir}）。请先运行：{self.command}"


class IndexChanged(IpqaError):
    """A long write that prepared its data outside the lock (a re-embedding) found the index changed."""

    def __init__(self, index_dir: str | Path, detail: str):
        self.index_dir = str(index_dir)
        super().__init__(f"{self.index_dir} changed while it was re-embedded: {detail}")

    @property
    def user_message(self) -> str:
        return (f"重新向量化期间索引（{self.index_dir}）有改动（文档被添加或删除）。请再运行一次："
                "已完成的部分会保留，只补做改动的文档")


class IndexReembedded(IpqaError):
    """A reader found the knowledge base re-embedded by another process (``ipqa index --reembed``):
    its model no longer fits the vectors until it reopens the knowledge base (an app server does
    within a second)."""

    def __init__(self, index_dir: str | Path, old: str, new: str):
        self.index_dir, self.old, self.new = str(index_dir), old, new
        super().__init__(f"{self.index_dir} was re-embedded with {new} (this reader has {old}); reopen it")

    @property
    def user_message(self) -> str:
        return f"知识库（{self.index_dir}）刚换用了向量模型「{self.new}」，本服务正在切换，请稍后重试"


class IndexBusy(IpqaError):
    """Writers kept swapping in new versions of the index while it was being opened."""

    def __init__(self, index_dir: str | Path):
        self.index_dir = str(index_dir)
        super().__init__(f"{self.index_dir} was replaced by writers on every attempt to open it")

    @property
    def user_message(self) -> str:
        return f"索引（{self.index_dir}）正在被反复更新，暂时无法打开，请稍后重试"


class IndexMismatch(IpqaError):
    """The index on disk cannot be used as it is; ``command`` rebuilds it."""

    def __init__(self, reason: str, index_dir: str | Path, *, extra: str = "", action: str = "rebuild"):
        self.reason = reason  # Chinese, for users
        self.index_dir = str(index_dir)
        # "reembed": only the vectors are of another model; re-embedding keeps uploaded documents
        where = "--store" if self.index_dir.startswith(("postgresql://", "postgres://")) else "--index-dir"
        self.command = f"ipqa index --{action} {where} {self.index_dir}{extra}"
        super().__init__(f"{reason}; fix with: {self.command}")

    @property
    def user_message(self) -> str:
        return f"索引无法使用：{self.reason}。请运行：{self.command}"


class IndexDamaged(IndexMismatch):
    """A file of the index is missing, truncated or corrupt; ``file`` names it (relative to the index)."""

    def __init__(self, file: str, detail: str, index_dir: str | Path, *, extra: str = "", note: str = ""):
        self.file = file
        self.detail = detail  # Chinese, for users
        self.note = note  # Chinese, for users: what a rebuild does not bring back
        super().__init__(f"索引文件「{file}」已损坏（{detail}）", index_dir, extra=extra)

    @property
    def user_message(self) -> str:
        return super().user_message + (f"。{self.note}" if self.note else "")


class InvalidQuestion(IpqaError):
    """A question that cannot be searched (empty, too long, ...)."""

    def __init__(self, reason: str):
        self.reason = reason  # Chinese, for users
        super().__init__(reason)


class InvalidSetting(IpqaError):
    """A setting (environment variable or flag) with an unusable value."""

    def __init__(self, name: str, value: str, expected: str):
        self.setting, self.value, self.expected = name, value, expected  # expected: Chinese
        super().__init__(f"{name}={value!r}: {expected}")

    @property
    def user_message(self) -> str:
        return f"设置 {self.setting} 的值「{self.value}」无效：{self.expected}"


class NotAnIndex(IpqaError):
    """A folder given as an index directory that holds something else: refused, never touched."""

    def __init__(self, index_dir: str | Path, what: str, *, advice: str = ""):
        self.index_dir = str(index_dir)
        self.what = what  # Chinese, for users: what is there
        self.advice = advice or "请用 --index-dir 指定一个还不存在的或空的文件夹"  # Chinese, for users
        super().__init__(f"{self.index_dir} is not an ipqa index ({what}); refusing to touch it")

    @property
    def user_message(self) -> str:
        return f"「{self.index_dir}」不是 ipqa 的索引目录（{self.what}）。为免误删其中的内容，没有做任何改动；{self.advice}。"


class EmbedderUnavailable(IpqaError):
    """An embedding model that cannot be used here: unknown name, or not on this machine."""

    CHOICES = "e5-small-onnx（默认）、e5-small-int8、e5-small、hash，或本机上的 sentence-transformers 模型文件夹"

    def __init__(self, name: str, reason: str):
        self.embedder, self.reason = name, reason  # reason: Chinese, for users
        super().__init__(f"embedder {name!r} unavailable: {reason}")

    @property
    def user_message(self) -> str:
        return f"无法使用向量模型「{self.embedder}」：{self.reason}。可用：{self.CHOICES}"


class InvalidParameter(IpqaError):
    """A search or ask parameter out of range or naming nothing in the index (k, mode, years, filters)."""

    def __init__(self, reason: str):
        self.reason = reason  # Chinese, for users
        super().__init__(reason)
