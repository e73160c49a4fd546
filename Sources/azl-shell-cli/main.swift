import Commands

AZLShell.mainEntry()
