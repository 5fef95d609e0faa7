"""The command line: the Typer app, what it prints (views) and the consoles it prints to."""
