from contacts_api.cli import main

main()
