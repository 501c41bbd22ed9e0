"""papersift's user interfaces: the `papersift` command line and the Streamlit app."""
