from cdrlog.cli import main

main()
