"""The REPL's prompt (prompt-toolkit): history file, keys, completion, the bottom toolbar.

Enter sends and Alt-Enter adds a line; a pasted block stays one question; Tab completes slash
commands, task names and files; the toolbar shows the task, who would answer, the model and
the last answer's size. prompt_toolkit is imported only here, when the REPL opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from brain import conversation as conv

if TYPE_CHECKING:
    from brain.repl import Repl

STYLE = {
    "prompt.task": "bold ansicyan",
    "prompt.mode": "ansiyellow",
    "bottom-toolbar": "noreverse bg:#262626 #bcbcbc",
    "tb.value": "bold",
    "tb.apex": "bold ansigreen",
    "tb.local": "bold ansiyellow",
    "tb.none": "bold ansired",
}
REFRESH = 1.0  # seconds between toolbar redraws


def session(repl: Repl) -> Any:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
    from prompt_toolkit.history import FileHistory
    from prompt_toolkit.styles import Style

    from brain.files import private_file

    # Everything typed lands here: readable by its owner only, like the history db.
    private_file(repl.history_path)
    return PromptSession(
        history=FileHistory(str(repl.history_path)),
        auto_suggest=AutoSuggestFromHistory(),
        completer=completer(repl),
        complete_while_typing=True,
        key_bindings=_keys(),
        bottom_toolbar=repl.toolbar,
        refresh_interval=REFRESH,
        multiline=True,
        prompt_continuation=lambda width, _n, _soft: "." * max(width - 1, 0) + " ",
        enable_open_in_editor=True,
        style=Style.from_dict(STYLE),
        reserve_space_for_menu=6,
    )


def _keys() -> Any:
    from prompt_toolkit.filters import has_focus
    from prompt_toolkit.key_binding import KeyBindings

    kb = KeyBindings()
    default_focused = has_focus("DEFAULT_BUFFER")

    @kb.add("enter", filter=default_focused)
    def _send(event: Any) -> None:
        buffer = event.current_buffer
        state = buffer.complete_state
        if state is not None and state.current_completion is not None:
            chosen = state.current_completion.text
            buffer.apply_completion(state.current_completion)
            if chosen.endswith(" "):  # `/digest `, `/task `: the rest is still to type
                return
        buffer.validate_and_handle()

    @kb.add("escape", "enter", filter=default_focused)
    def _newline(event: Any) -> None:
        event.current_buffer.insert_text("\n")

    return kb


def completer(repl: Repl) -> Any:
    """Slash commands and task names after `/`, task names after `/task`, files on Tab."""
    from prompt_toolkit.completion import Completer, Completion, PathCompleter
    from prompt_toolkit.document import Document

    paths = PathCompleter(expanduser=True)

    def files(word: str, event: Any) -> Any:
        yield from paths.get_completions(Document(word, len(word)), event)

    def slash(text: str) -> Any:
        # What takes an argument completes with a space after it; Enter sends the others.
        word = text[1:]
        for name, t in repl.tasks.items():
            if name.startswith(word):
                yield Completion(f"/{name} ", -len(text), f"/{name}", display_meta=t.description)
        for name, (arg, what) in conv.SLASH_COMMANDS.items():
            if name.startswith(word):
                yield Completion(
                    f"/{name} " if arg else f"/{name}", -len(text), f"/{name}", display_meta=what
                )

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Any:
            text = document.text_before_cursor
            if text.startswith("/") and not any(c.isspace() for c in text):
                yield from slash(text)
            elif text.startswith("/task ") and "\n" not in text:
                word = text[len("/task ") :].lstrip()
                for name, t in repl.tasks.items():
                    if name.startswith(word):
                        yield Completion(name, -len(word), display_meta=t.description)
            elif text.startswith("/save ") and "\n" not in text:
                yield from files(text[len("/save ") :].split(" ")[-1], complete_event)
            elif complete_event.completion_requested:  # Tab in a question: file names
                yield from files(document.get_word_before_cursor(WORD=True), complete_event)

    return SlashCompleter()


def invalidate(prompt: Any) -> None:
    app = getattr(prompt, "app", None)
    if app is not None and app.is_running:
        app.invalidate()
