"""The Annotate page: a keyboard-first view over core.annotation.AnnotationSession (rank, pairwise, rate).

    common      mode names, queue splits, key texts, the widget helpers the parts share
    board       the centre: the prompt over the candidate cards (or a diff of two, or a message)
    ranking     the ranking panel: the ranking being built, as a list the mouse can reorder
    pairwise    the pairwise panel: A, B, tie or both bad, and the choice made before
    rating      the rating panel: the scale, how many cards are rated, submit
    side_panel  the Judge tab (the mode's panel, flags, comment, navigation) and the Guidelines tab
    shortcuts   what the shortcut overlay (?) lists
    page        AnnotatePage: the state and the keys, composing the top bar, the board and the side panel
    screens     the page's screenshots

The queue order, the model check after a submit and the Review tab are desktop.pages.annotate_assist.
"""

from desktop.pages.annotate.board import CandidateBoard
from desktop.pages.annotate.common import MAX_FLAG_KEYS, MODE_LABELS, SPLITS, TIE_TEXTS
from desktop.pages.annotate.page import AnnotatePage
from desktop.pages.annotate.shortcuts import SHORTCUTS
from desktop.pages.annotate.pairwise import PairwisePanel
from desktop.pages.annotate.ranking import RankingPanel
from desktop.pages.annotate.rating import RatingPanel
from desktop.pages.annotate.screens import render_annotate_screens
from desktop.pages.annotate.side_panel import GuidelinesTab, JudgeTab, SidePanel

__all__ = [
    "AnnotatePage",
    "CandidateBoard",
    "GuidelinesTab",
    "JudgeTab",
    "PairwisePanel",
    "RankingPanel",
    "RatingPanel",
    "SidePanel",
    "render_annotate_screens",
    "MAX_FLAG_KEYS",
    "MODE_LABELS",
    "SHORTCUTS",
    "SPLITS",
    "TIE_TEXTS",
]
