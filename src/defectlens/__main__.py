"""``python -m defectlens``: the command line, as the ``defectlens`` script runs it (for an environment whose scripts
folder is not on PATH); its usage lines say "python -m defectlens"."""

from defectlens._entry import main

if __name__ == "__main__":
    main()
