from scanner.entry import run

run()
