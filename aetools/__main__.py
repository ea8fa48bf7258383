from aetools.cli import main

main()
