from writeit.cli import main

main()
