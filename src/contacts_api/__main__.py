from contacts_api.entry import main

main()
