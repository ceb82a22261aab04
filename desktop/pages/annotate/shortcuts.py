"""What the Annotate page's shortcut overlay (?) lists: the keys of each mode, then those of every mode."""

SHORTCUTS = [
    (
        "Rank (Ctrl+1)",
        [
            ("1 … 9", "place that candidate next, best first"),
            ("= or T", "tie the next candidate with the previous one"),
            ("Backspace", "take back the last placement"),
            ("Enter", "submit the ranking (a last single candidate goes last)"),
        ],
    ),
    ("Pairwise (Ctrl+2)", [("A / B", "A is better / B is better (submits)"), ("T", "tie"), ("X", "both bad")]),
    (
        "Rate (Ctrl+3)",
        [
            ("Tab / → / ↓", "select the next card"),
            ("Shift+Tab / ← / ↑", "select the previous card"),
            ("1 … 7", "rate the selected card"),
            ("Backspace", "clear its rating"),
            ("Enter", "submit the ratings"),
        ],
    ),
    (
        "Any mode",
        [
            ("F1 … F9", "toggle a flag"),
            ("C", "write a comment (Esc to leave)"),
            ("S", "skip this item"),
            ("Alt+← or ,", "previous item"),
            ("Alt+→ or .", "next item"),
            ("Ctrl+Z", "undo the last submitted judgment"),
            ("D", "diff two candidates"),
            ("G", "show the guidelines"),
            ("?", "this overview"),
            ("Esc", "close overlay / diff"),
        ],
    ),
]
