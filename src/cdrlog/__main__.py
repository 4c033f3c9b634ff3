from cdrlog.cli.main import main

main()
