"""Streamlit pages of Platform Monitor. streamlit_app.py lists the page scripts in st.navigation."""
