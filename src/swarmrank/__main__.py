from swarmrank.cli import main

main()
