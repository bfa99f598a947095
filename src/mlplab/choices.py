"""Placeholder: replaced at merge by the branch that declares every choice list here."""

ENGINES = ("auto", "autograd", "manual", "scratch")
