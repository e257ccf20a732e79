"""What the `lima` command shows and checks around the runner: where its files live
(`workdir`), the checks before Ray starts (`preflight`), reading runs back (`runs`), the live
display's log capture (`capture`), the closing summary (`summary`), `lima init` (`scaffold`),
`lima diff` (`diff`) and help without Python types (`help`).

`lima/cli.py` only registers commands; their logic lives here so each concern stays small.
"""
