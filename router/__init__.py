"""Router: decides where each collected message goes (rules, then the model, else the manual queue)."""
