# tools/: operator and load tools (use common only).
